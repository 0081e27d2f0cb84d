#undef real
#undef FN
#undef EXP
#undef LOG
#undef TANH
#undef SQRT
#undef GEMM
#undef RF_DTYPE
