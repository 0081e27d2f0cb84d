#include "paths.h"

/* isa -1: not yet set */
static struct rf_paths current = {-1, RF_PACKED_AUTO, RF_CHUNK_BYTES, RF_CHUNK_ROWS};

int rf_isa_available(int isa)
{
    switch (isa) {
    case RF_ISA_BASELINE:
        return 1;
#if RF_ISA_VARIANTS
    case RF_ISA_AVX2:
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case RF_ISA_AVX512:
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma");
#endif
    default:
        return 0;
    }
}

int rf_isa_active(void)
{
    if (current.isa < 0) {
        int isa = RF_ISA_COUNT - 1;
        while (!rf_isa_available(isa))
            isa--;
        current.isa = isa;
    }
    return current.isa;
}

int rf_paths_set(const struct rf_paths *paths)
{
    if (!rf_isa_available(paths->isa) || paths->chunk_bytes < 1 || paths->chunk_rows < 1
        || paths->packed < RF_PACKED_AUTO || paths->packed > RF_PACKED_ON)
        return -1;
    current = *paths;
    return 0;
}

struct rf_paths rf_paths_get(void)
{
    rf_isa_active();
    return current;
}

/* A build for the host (-march=native) whose baseline has AVX-512F and FMA packs by default too. */
#if defined(__AVX512F__) && defined(__FMA__)
#define BASELINE_PACKS 1
#else
#define BASELINE_PACKS 0
#endif

int rf_use_packed(int M)
{
    if (current.packed != RF_PACKED_AUTO)
        return current.packed;
    return M >= 2 && (rf_isa_active() == RF_ISA_AVX512 || BASELINE_PACKS);
}

int rf_chunk_steps(int B, int64_t step_bytes)
{
    const int64_t by_bytes = current.chunk_bytes / step_bytes;
    const int64_t by_rows = (current.chunk_rows + B - 1) / B;
    const int64_t steps = by_bytes > by_rows ? by_bytes : by_rows;
    return steps < 1 ? 1 : steps > 0x7fffffff ? 0x7fffffff : (int)steps;
}
