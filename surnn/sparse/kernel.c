/* The sparse suRNN step loop: compute only the neurons whose switch is open.
 *
 * Plain C (no Python or torch headers), loaded with ctypes by `surnn/sparse/native.py`; the
 * package's install builds it (setup.py), and native.py builds it on first use otherwise.
 * `surnn/sparse/eager.py` is the same algorithm in PyTorch, and the tests hold both to the
 * dense layer and to surnn/reference.py.
 *
 * Layout ("engine order"): neurons are permuted so that a rhythmic gate's open set at a step is
 * a few contiguous runs. Weights are neuron-major, W[j][g][0:I] the input row and W[j][g][I:I+H]
 * the recurrent row (columns in engine order) of block g of neuron j, so an open neuron's rows
 * are one contiguous G * (I + H) floats. States and outputs cross this interface in the layer's
 * own order; perm[j] is the layer's index of engine neuron j.
 *
 * Numerics follow the dense layer: r, z = sigmoid((x W_i + b_i) + (h W_h + b_h)) and
 * n = tanh((x W_in + b_in) + r (h W_hn + b_hn)), f = lerp(n, h, z); a closed neuron is never
 * written, so it keeps its state bit for bit. Only the summation order of the dot products
 * differs from the BLAS the dense layer uses.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define SURNN_X86 1
#endif

#ifndef SURNN_KERNEL_HASH
#define SURNN_KERNEL_HASH "unversioned"
#endif

enum { CELL_GRU = 0, CELL_RNN = 1, CELL_LSTM = 2 };
#define MAX_G 4

typedef struct {
    int32_t cell, G, I, H;
    const float *W;        /* [H][G][I + H] */
    const float *bias;     /* [H][G][2]: input bias, recurrent bias */
    const int64_t *perm;   /* [H] engine neuron -> layer neuron */
    const float *U;        /* event gate [H][I] (engine order), or NULL */
    const float *ub;       /* event gate [H]: bias - threshold */
    const float *v;        /* event gate [H]: state weight */
} Layer;

typedef struct {
    int32_t B, T;
    int32_t threads;         /* at most this many threads */
    const float *x;          /* [B][T][I] */
    const uint8_t *mask;     /* [B][T], or NULL: every step real */
    const int32_t *run_ptr;  /* rhythmic / none: runs of step t are run_ptr[t] .. run_ptr[t+1] - 1 */
    const int32_t *run_start, *run_len;
    const float *drive;      /* event: [B][T][H] engine order, u.x + c - threshold; NULL: computed here from U */
    const float *h0, *c0;    /* [B][H] layer order (c0 only for lstm) */
    float *h1, *c1;          /* [B][H] layer order: the final state */
    float *y;                /* [B][T][H] layer order, every h_t; or NULL */
    uint8_t *gates;          /* [B][T][H] layer order, zeroed by the caller, 1 where open; or NULL */
    int64_t opened;          /* out: open (row, neuron, step) triples */
} Call;

const char *surnn_kernel_hash(void) { return SURNN_KERNEL_HASH; }

int surnn_kernel_simd(void) {
#ifdef SURNN_X86
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return 0;
#endif
}

/* out[g] = sum_k w[g * ld + k] v[k] for g < G: G rows that share one vector. */
static inline void dots_scalar(const float *w, int64_t ld, int G, const float *v, int n, float *out) {
    for (int g = 0; g < G; g++) {
        float a[4] = {0.f, 0.f, 0.f, 0.f};
        const float *row = w + g * ld;
        int k = 0;
        for (; k + 4 <= n; k += 4)
            for (int u = 0; u < 4; u++) a[u] += row[k + u] * v[k + u];
        for (; k < n; k++) a[0] += row[k] * v[k];
        out[g] = (a[0] + a[1]) + (a[2] + a[3]);
    }
}

#ifdef SURNN_X86
__attribute__((target("avx2,fma"))) static inline float hsum256(__m256 a) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
}

/* G is a compile-time constant at every call site (inlined), so the accumulators stay in
 * registers: 2 per row, the vector loaded once per 16 floats for all rows. */
#define DEFINE_DOTS(G)                                                                       \
    __attribute__((target("avx2,fma"))) static void dots_avx2_##G(                          \
        const float *w, int64_t ld, const float *v, int n, float *out) {                   \
        __m256 a0[G], a1[G];                                                                \
        for (int g = 0; g < G; g++) a0[g] = a1[g] = _mm256_setzero_ps();                    \
        int k = 0;                                                                          \
        for (; k + 16 <= n; k += 16) {                                                      \
            __m256 v0 = _mm256_loadu_ps(v + k), v1 = _mm256_loadu_ps(v + k + 8);            \
            for (int g = 0; g < G; g++) {                                                   \
                a0[g] = _mm256_fmadd_ps(_mm256_loadu_ps(w + g * ld + k), v0, a0[g]);        \
                a1[g] = _mm256_fmadd_ps(_mm256_loadu_ps(w + g * ld + k + 8), v1, a1[g]);    \
            }                                                                               \
        }                                                                                   \
        for (int g = 0; g < G; g++) {                                                       \
            float s = hsum256(_mm256_add_ps(a0[g], a1[g]));                                 \
            for (int kk = k; kk < n; kk++) s += w[g * ld + kk] * v[kk];                     \
            out[g] = s;                                                                     \
        }                                                                                   \
    }
DEFINE_DOTS(1)
DEFINE_DOTS(3)
DEFINE_DOTS(4)
#endif

static int g_simd = -1;

static void dots(const float *w, int64_t ld, int G, const float *v, int n, float *out) {
#ifdef SURNN_X86
    if (g_simd) {
        if (G == 3) { dots_avx2_3(w, ld, v, n, out); return; }
        if (G == 4) { dots_avx2_4(w, ld, v, n, out); return; }
        if (G == 1) { dots_avx2_1(w, ld, v, n, out); return; }
    }
#endif
    dots_scalar(w, ld, G, v, n, out);
}

static inline float sigmoidf(float a) { return 1.0f / (1.0f + expf(-a)); }

/* torch.lerp(a, b, w) = a + w (b - a) for |w| < 0.5, else b - (b - a)(1 - w). */
static inline float lerpf(float a, float b, float w) {
    return (fabsf(w) < 0.5f) ? a + w * (b - a) : b - (b - a) * (1.0f - w);
}

/* The candidate of engine neuron j for one row: new h (and c) from x_t and h (engine order). */
static void candidate(const Layer *L, int j, const float *x, const float *h, float c_old,
                      float *h_new, float *c_new) {
    const int G = L->G, I = L->I, H = L->H;
    const int64_t ld = (int64_t)I + H;
    const float *w = L->W + (int64_t)j * G * ld, *b = L->bias + (int64_t)j * G * 2;
    float ax[MAX_G], ah[MAX_G];
    dots(w, ld, G, x, I, ax);
    dots(w + I, ld, G, h, H, ah);
    float p[MAX_G];
    for (int g = 0; g < G; g++) p[g] = (ax[g] + b[2 * g]) + (ah[g] + b[2 * g + 1]);
    if (L->cell == CELL_GRU) {
        float r = sigmoidf(p[0]), z = sigmoidf(p[1]);
        float n = tanhf((ax[2] + b[4]) + r * (ah[2] + b[5]));
        *h_new = lerpf(n, h[j], z);
    } else if (L->cell == CELL_RNN) {
        *h_new = tanhf(p[0]);
    } else {
        float c = sigmoidf(p[1]) * c_old + sigmoidf(p[0]) * tanhf(p[2]);
        *c_new = c;
        *h_new = sigmoidf(p[3]) * tanhf(c);
    }
}

/* Below this many multiply-adds a step stays on one thread: a fork and join costs about a
 * microsecond, as much as a few thousand of them. */
#define PAR_WORK 65536

/* Open engine neurons of row b at step t, written to idx; returns how many. */
static int open_set(const Layer *L, const Call *C, int b, int t, const float *h, const float *x,
                    float *scratch, int32_t *idx, int threads) {
    const int H = L->H, I = L->I;
    if (C->mask && !C->mask[(int64_t)b * C->T + t]) return 0;
    int n = 0;
    if (!L->U) {
        for (int32_t q = C->run_ptr[t]; q < C->run_ptr[t + 1]; q++)
            for (int32_t j = C->run_start[q], e = C->run_start[q] + C->run_len[q]; j < e; j++) idx[n++] = j;
        return n;
    }
    const float *e = scratch;
    if (C->drive) {
        e = C->drive + ((int64_t)b * C->T + t) * H;
    } else {   /* a stream step: the event gate's input drive u . x_t, every neuron */
        #pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1 && (int64_t)H * I >= PAR_WORK)
        for (int j = 0; j < H; j++) {
            float a;
            dots(L->U + (int64_t)j * I, I, 1, x, I, &a);
            scratch[j] = a + L->ub[j];
        }
    }
    for (int j = 0; j < H; j++)
        if (e[j] + L->v[j] * h[j] > 0.0f) idx[n++] = j;
    return n;
}

/* All T steps of row b; returns the open count, or -1 when out of memory. */
static int64_t run_row(const Layer *L, const Call *C, int b, int threads) {
    const int T = C->T, H = L->H, I = L->I, G = L->G, lstm = L->cell == CELL_LSTM;
    float *h = malloc(sizeof(float) * (size_t)H * (lstm ? 2 : 1));   /* the row's state, engine order */
    float *scratch = malloc(sizeof(float) * (size_t)H * 3);           /* drive, new h, new c */
    int32_t *idx = malloc(sizeof(int32_t) * (size_t)H);
    if (!h || !scratch || !idx) { free(h); free(scratch); free(idx); return -1; }
    float *c = lstm ? h + H : NULL, *hn = scratch + H, *cn = scratch + 2 * H;
    const int64_t *perm = L->perm;
    int64_t opened = 0;
    for (int j = 0; j < H; j++) h[j] = C->h0[(int64_t)b * H + perm[j]];
    if (lstm) for (int j = 0; j < H; j++) c[j] = C->c0[(int64_t)b * H + perm[j]];
    const float *prev = C->h0 + (int64_t)b * H;
    for (int t = 0; t < T; t++) {
        const float *x = C->x + ((int64_t)b * T + t) * I;
        const int n = open_set(L, C, b, t, h, x, scratch, idx, threads);
        #pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1 && (int64_t)n * G * (I + H) >= PAR_WORK)
        for (int q = 0; q < n; q++) candidate(L, idx[q], x, h, lstm ? c[idx[q]] : 0.f, hn + q, cn + q);
        for (int q = 0; q < n; q++) {   /* commit after every candidate has read the old h */
            h[idx[q]] = hn[q];
            if (lstm) c[idx[q]] = cn[q];
        }
        opened += n;
        if (C->y) {
            float *yt = C->y + ((int64_t)b * T + t) * H;
            memcpy(yt, prev, sizeof(float) * (size_t)H);
            for (int q = 0; q < n; q++) yt[perm[idx[q]]] = hn[q];
            prev = yt;
        }
        if (C->gates) {
            uint8_t *gt = C->gates + ((int64_t)b * T + t) * H;
            for (int q = 0; q < n; q++) gt[perm[idx[q]]] = 1;
        }
    }
    for (int j = 0; j < H; j++) C->h1[(int64_t)b * H + perm[j]] = h[j];
    if (lstm) for (int j = 0; j < H; j++) C->c1[(int64_t)b * H + perm[j]] = c[j];
    free(h); free(scratch); free(idx);
    return opened;
}

/* Run T steps for B rows on C->threads threads (rows in parallel, or one row's open neurons
 * when there is a single row). Returns 0, or -1 when out of memory. */
int surnn_sparse_run(const Layer *L, Call *C) {
    if (g_simd < 0) g_simd = surnn_kernel_simd();
    const int B = C->B, threads = C->threads > 1 ? C->threads : 1;
    int64_t opened = 0;
    int failed = 0;
    if (B > 1 && threads > 1) {
        #pragma omp parallel for schedule(dynamic, 1) num_threads(threads) reduction(+ : opened) reduction(| : failed)
        for (int b = 0; b < B; b++) {
            int64_t n = run_row(L, C, b, 1);
            if (n < 0) failed = 1; else opened += n;
        }
    } else {
        for (int b = 0; b < B; b++) {
            int64_t n = run_row(L, C, b, threads);
            if (n < 0) failed = 1; else opened += n;
        }
    }
    C->opened = opened;
    return failed ? -1 : 0;
}

int surnn_kernel_openmp(void) {
#ifdef _OPENMP
    return 1;
#else
    return 0;
#endif
}
