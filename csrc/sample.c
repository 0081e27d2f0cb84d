#include <math.h>
#include <string.h>

#include "blas.h"
#include "recurrent.h"
#include "vector_clones.h"

/* The value at position k (0-based) of a (n) sorted in descending order; reorders a.
 * Quickselect with Hoare partitioning: the value is unique whatever the order of equal ones. */
static double rf_kth_largest(double *a, int n, int k)
{
    int lo = 0, hi = n - 1;
    while (lo < hi) {
        const double pivot = a[lo + (hi - lo) / 2];
        int i = lo, j = hi;
        while (i <= j) {
            while (a[i] > pivot)
                i++;
            while (a[j] < pivot)
                j--;
            if (i <= j) {
                const double tmp = a[i];
                a[i] = a[j];
                a[j] = tmp;
                i++;
                j--;
            }
        }
        if (k <= j)
            hi = j;
        else if (k >= i)
            lo = i;
        else
            return a[k];
    }
    return a[k];
}

#define RF_DTYPE 32
#include "real_begin.h"
#include "vmath_tmpl.h"
#include "cell_tmpl.h"
#include "sample_tmpl.h"
#include "real_end.h"

#define RF_DTYPE 64
#include "real_begin.h"
#include "vmath_tmpl.h"
#include "cell_tmpl.h"
#include "sample_tmpl.h"
#include "real_end.h"
