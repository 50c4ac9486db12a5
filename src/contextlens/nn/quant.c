/* Matrix products with weights kept in llama.cpp's block formats, as stored in a GGUF file.

   A weight is [n rows (outputs), k columns (inputs)]; each row is a run of blocks. Every format
   but F16/BF16 is read as blocks of 32 integers v with scales, w = scale[j / 16] * v_j + lo:
     Q4_0  {f16 d; u8 q[16]}            v = q (0..15), scale d, lo -8d
                                        (q[j] & 15 is value j, q[j] >> 4 value j + 16)
     Q4_1  {f16 d; f16 m; u8 q[16]}     v = q (0..15), scale d, lo m
     Q8_0  {f16 d; i8 q[32]}            v = q, scale d, lo 0
     Q4_K  256 values {f16 d; f16 dmin; u8 scales[12]; u8 q[128]}: 8 blocks of 32, each with a
           6-bit scale s and min m packed in scales[]: v = 4-bit q, scale d * s, lo -dmin * m
     Q6_K  256 values {u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d}: v = 6-bit q - 32,
           one scale d * scales[i] per 16 values
   F16 and BF16 rows are k 16-bit floats, F32 rows k floats; F32_COLUMNS (not a GGML type) is a
   float32 weight stored column-major, [k, n] in memory (exact mode's LM head).

   cl_matmul:  y[i, c] = sum_j x[i, j] * W[c, j]   x [m, k] float32, y [m, sum of n] float32,
               W the parts stacked along the rows, each part's rows picked by its `rows` (NULL:
               in order), so a fused layer (Q, K, V) is one call sharing one pass over x.
               Optionally the rows of x are prepared first (`prep`): RMS-normalised,
               x / sqrt(mean(x²) + eps) · (offset + norm), or, for a gated MLP, x [m, 2k] becomes
               silu(x[:, :k]) · x[:, k:]; and with `accumulate` y += the product (a residual
               added in place) instead of y = it.
               The output rows are split into chunks shared by a pool of threads (see there).
   cl_dequant: out[r, j] = w[rows[r], j]             out [n, k] float32
   cl_linear:  y = x · Wᵀ + b for a float32 W [n, k], each sum in MKL's sgemm order (see there)
   cl_rope, cl_attend_one: the rest of one new token's attention over a KV cache (see there).

   Block formats multiply integers: each input row is quantised once per call to blocks of 32
   int16 with one float scale (x ≈ d * q, d = max|x| / 32767, nearest even), and a block's
   product is d * sum_h scale_h * (v · q)_h + lo * d * sum(q), summed exactly in integers within
   a block. (int8 activations, as llama.cpp uses, were measured too: ~1.25× faster here but top-1
   agreement with float32 on held-out prose fell to 95.9%; int16 keeps it.) F16/BF16 are
   widened to float32 and multiplied into the float32 activations. With AVX2 (compile-time,
   -march=native) the inner loops use 256-bit integer multiply-adds (vpmaddwd); the portable
   scalar code computes the same sums. */

#define _GNU_SOURCE /* pthread_setname_np */
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#if defined(__AVX2__) || defined(__F16C__)
#include <immintrin.h>
#endif

enum { F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q8_0 = 8, Q4_K = 12, Q6_K = 14, BF16 = 30 };
enum { F32_COLUMNS = 1000 }; /* not a GGML type: float32 [n, k] stored column-major, as [k, n] */

/* smaller products run on the calling thread alone: handing out chunks costs more than it saves
   (the kernel table of bench/bench_native.py at 1 and 16 rows) */
#define PARALLEL_MIN (1L << 18)
#define CHUNKS_PER_THREAD 8 /* a late worker holds up the caller by one chunk at most */
#define F32_ROWS 6          /* float32 weight rows multiplied together, */
#define F32_INPUTS 2        /* with this many input rows (12 sums + 3 vectors in 16 registers) */
#define COLUMN_BLOCK 4096   /* float32 columns summed in place at a time (16 KiB per input row: long
                               runs of each weight row for the prefetcher; 512 read the LM head
                               at 6.2 ms a row, this 4.8-5.4) */
#define CHUNK_ALIGN 8       /* rows per chunk: a multiple of this (whole vectors of columns) */
#define TILE 8 /* input rows multiplied per pass over an F16/BF16 weight row */
#define XT 4   /* the same for block formats (more would not stay in registers) */

typedef struct {
    float d, s; /* x ≈ d * q; s = d * sum(q) */
    int16_t q[32];
} xblock;

typedef struct {
    int8_t v[32];
    float scale[2]; /* for v[0..15] and v[16..31] */
    float lo;
} wblock;

static float half_to_float(uint16_t h) {
#ifdef __F16C__
    return _cvtsh_ss(h);
#else
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
    if (exp == 0x1f) {
        bits = sign | 0x7f800000u | (man << 13);
    } else if (exp != 0) {
        bits = sign | ((exp + 112) << 23) | (man << 13);
    } else if (man == 0) {
        bits = sign;
    } else { /* subnormal: normalise */
        exp = 113;
        while (!(man & 0x400)) { man <<= 1; exp--; }
        bits = sign | (exp << 23) | ((man & 0x3ff) << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
#endif
}

static float bf16_to_float(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

static uint16_t load16(const uint8_t *p) {
    uint16_t v;
    memcpy(&v, p, 2);
    return v;
}

static int is_float(int fmt) { return fmt == F16 || fmt == BF16; }

static long row_bytes(int fmt, int k) {
    switch (fmt) {
    case Q4_0: return k % 32 ? -1 : (long)k / 32 * 18;
    case Q4_1: return k % 32 ? -1 : (long)k / 32 * 20;
    case Q8_0: return k % 32 ? -1 : (long)k / 32 * 34;
    case Q4_K: return k % 256 ? -1 : (long)k / 256 * 144;
    case Q6_K: return k % 256 ? -1 : (long)k / 256 * 210;
    case F16: case BF16: return k % 32 ? -1 : (long)k * 2;
    case F32: case F32_COLUMNS: return (long)k * 4;
    default: return -1;
    }
}

/* Q4_K: the 6-bit scale and min of block j (0..7) of a super-block */
static void k4_scale_min(const uint8_t *s, int j, int *scale, int *min) {
    if (j < 4) {
        *scale = s[j] & 63;
        *min = s[j + 4] & 63;
    } else {
        *scale = (s[j + 4] & 15) | ((s[j - 4] >> 6) << 4);
        *min = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    }
}

/* block b (values 32b .. 32b + 31) of a row in a block format: integers, scales and offset */
static void block_ints(int fmt, const uint8_t *row, int b, wblock *w) {
    if (fmt == Q8_0) {
        const uint8_t *p = row + (long)b * 34;
        w->scale[0] = w->scale[1] = half_to_float(load16(p));
        w->lo = 0;
        memcpy(w->v, p + 2, 32);
    } else if (fmt == Q4_0 || fmt == Q4_1) {
        const uint8_t *p = row + (long)b * (fmt == Q4_0 ? 18 : 20);
        float d = half_to_float(load16(p));
        const uint8_t *q = p + (fmt == Q4_0 ? 2 : 4);
        w->scale[0] = w->scale[1] = d;
        w->lo = fmt == Q4_0 ? -8.0f * d : half_to_float(load16(p + 2));
        for (int j = 0; j < 16; j++) {
            w->v[j] = q[j] & 15;
            w->v[j + 16] = q[j] >> 4;
        }
    } else if (fmt == Q4_K) {
        const uint8_t *p = row + (long)(b / 8) * 144;
        int j = b % 8, scale, min, shift = 4 * (j % 2);
        k4_scale_min(p + 4, j, &scale, &min);
        w->scale[0] = w->scale[1] = half_to_float(load16(p)) * scale;
        w->lo = -half_to_float(load16(p + 2)) * min;
        const uint8_t *q = p + 16 + 32 * (j / 2);
        for (int l = 0; l < 32; l++) w->v[l] = (q[l] >> shift) & 15;
    } else { /* Q6_K */
        const uint8_t *p = row + (long)(b / 8) * 210;
        int j = b % 8, half = j / 4, t = j % 4;
        const uint8_t *ql = p + 64 * half + 32 * (t % 2), *qh = p + 128 + 32 * half;
        const int8_t *scales = (const int8_t *)(p + 192) + 8 * half + 2 * t;
        float d = half_to_float(load16(p + 208));
        for (int l = 0; l < 32; l++)
            w->v[l] = (int8_t)((((ql[l] >> (4 * (t / 2))) & 15) | (((qh[l] >> (2 * t)) & 3) << 4)) - 32);
        w->scale[0] = d * scales[0];
        w->scale[1] = d * scales[1];
        w->lo = 0;
    }
}

/* values 32*b .. 32*b + 31 of one row, as floats */
static void block_values(int fmt, const uint8_t *row, int b, float *out) {
    if (is_float(fmt)) {
        const uint8_t *p = row + (long)b * 64;
        for (int j = 0; j < 32; j++) {
            uint16_t h = load16(p + 2 * j);
            out[j] = fmt == F16 ? half_to_float(h) : bf16_to_float(h);
        }
        return;
    }
    wblock w;
    block_ints(fmt, row, b, &w);
    for (int j = 0; j < 32; j++) out[j] = w.scale[j / 16] * w.v[j] + w.lo;
}

/* ---- activations to int16 blocks ---------------------------------------------------------- */

static void quantize_block(const float *x, xblock *out) {
#ifdef __AVX2__
    __m256 v[4], amax = _mm256_setzero_ps(), sign = _mm256_set1_ps(-0.0f);
    for (int t = 0; t < 4; t++) {
        v[t] = _mm256_loadu_ps(x + 8 * t);
        amax = _mm256_max_ps(amax, _mm256_andnot_ps(sign, v[t]));
    }
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(amax), _mm256_extractf128_ps(amax, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    float d = _mm_cvtss_f32(m) / 32767.0f, id = d > 0 ? 1.0f / d : 0.0f;
    __m256i q[4];
    for (int t = 0; t < 4; t++) q[t] = _mm256_cvtps_epi32(_mm256_mul_ps(v[t], _mm256_set1_ps(id)));
    __m256i sum = _mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3]));
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(sum), _mm256_extracti128_si256(sum, 1));
    s = _mm_hadd_epi32(s, s);
    s = _mm_hadd_epi32(s, s);
    /* packing works within 128-bit lanes: put the groups of four back in order */
    for (int t = 0; t < 2; t++) {
        __m256i q16 = _mm256_packs_epi32(q[2 * t], q[2 * t + 1]);
        q16 = _mm256_permute4x64_epi64(q16, 0xd8); /* 64-bit quarters 0, 2, 1, 3 */
        _mm256_storeu_si256((__m256i *)(out->q + 16 * t), q16);
    }
    out->d = d;
    out->s = d * (float)_mm_cvtsi128_si32(s);
#else
    float amax = 0;
    for (int j = 0; j < 32; j++) amax = fabsf(x[j]) > amax ? fabsf(x[j]) : amax;
    float d = amax / 32767.0f, id = d > 0 ? 1.0f / d : 0.0f;
    int sum = 0;
    for (int j = 0; j < 32; j++) {
        out->q[j] = (int16_t)nearbyintf(x[j] * id);
        sum += out->q[j];
    }
    out->d = d;
    out->s = d * (float)sum;
#endif
}

/* ---- one weight row times one quantised input row ----------------------------------------- */

#ifdef __AVX2__
/* block b as two halves of 16 int8 (values 0..15, 16..31), its scales for each half and its
   offset: fmt is a constant wherever this is inlined, so each format gets its own loop */
static inline __attribute__((always_inline)) void
block_halves(int fmt, const uint8_t *row, int b, __m128i v[2], float scale[2], float *lo) {
    const __m128i low4 = _mm_set1_epi8(15);
    if (fmt == Q8_0) {
        const uint8_t *p = row + (long)b * 34;
        scale[0] = scale[1] = half_to_float(load16(p));
        *lo = 0;
        v[0] = _mm_loadu_si128((const __m128i *)(p + 2));
        v[1] = _mm_loadu_si128((const __m128i *)(p + 18));
    } else if (fmt == Q4_0 || fmt == Q4_1) {
        const uint8_t *p = row + (long)b * (fmt == Q4_0 ? 18 : 20);
        float d = half_to_float(load16(p));
        scale[0] = scale[1] = d;
        *lo = fmt == Q4_0 ? -8.0f * d : half_to_float(load16(p + 2));
        __m128i q = _mm_loadu_si128((const __m128i *)(p + (fmt == Q4_0 ? 2 : 4)));
        v[0] = _mm_and_si128(q, low4);
        v[1] = _mm_and_si128(_mm_srli_epi16(q, 4), low4);
    } else if (fmt == Q4_K) {
        const uint8_t *p = row + (long)(b / 8) * 144;
        int j = b % 8, s, m;
        k4_scale_min(p + 4, j, &s, &m);
        scale[0] = scale[1] = half_to_float(load16(p)) * s;
        *lo = -half_to_float(load16(p + 2)) * m;
        const uint8_t *q = p + 16 + 32 * (j / 2);
        for (int h = 0; h < 2; h++)
            v[h] = _mm_and_si128(_mm_srli_epi16(_mm_loadu_si128((const __m128i *)(q + 16 * h)),
                                                4 * (j % 2)),
                                 low4);
    } else { /* Q6_K */
        const uint8_t *p = row + (long)(b / 8) * 210;
        int j = b % 8, half = j / 4, t = j % 4;
        const int8_t *sc = (const int8_t *)(p + 192) + 8 * half + 2 * t;
        float d = half_to_float(load16(p + 208));
        scale[0] = d * sc[0];
        scale[1] = d * sc[1];
        *lo = 0;
        const uint8_t *ql = p + 64 * half + 32 * (t % 2), *qh = p + 128 + 32 * half;
        for (int h = 0; h < 2; h++) {
            __m128i l = _mm_loadu_si128((const __m128i *)(ql + 16 * h));
            __m128i u = _mm_loadu_si128((const __m128i *)(qh + 16 * h));
            l = _mm_and_si128(_mm_srli_epi16(l, 4 * (t / 2)), low4);
            u = _mm_and_si128(_mm_srli_epi16(u, 2 * t), _mm_set1_epi8(3));
            v[h] = _mm_sub_epi8(_mm_or_si128(l, _mm_slli_epi16(u, 4)), _mm_set1_epi8(32));
        }
    }
}

static inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* v widened to int16 and multiplied into x's int16 values: pairs summed in int32, 8 lanes for
   values 0..15 in p[0] and 8 for values 16..31 in p[1] */
static inline __attribute__((always_inline)) void int_products(const __m128i v[2],
                                                                const int16_t *q, __m256i p[2]) {
    for (int h = 0; h < 2; h++)
        p[h] = _mm256_madd_epi16(_mm256_cvtepi8_epi16(v[h]),
                                 _mm256_loadu_si256((const __m256i *)(q + 16 * h)));
}

/* d_x * scale * (v · q) as 8 partial sums: one scale for the block, or (Q6_K) one per half */
static inline __attribute__((always_inline)) __m256 scaled(int fmt, const __m256i p[2],
                                                           const float scale[2], float dx) {
    if (fmt == Q6_K)
        return _mm256_fmadd_ps(_mm256_set1_ps(scale[1] * dx), _mm256_cvtepi32_ps(p[1]),
                               _mm256_mul_ps(_mm256_set1_ps(scale[0] * dx),
                                             _mm256_cvtepi32_ps(p[0])));
    return _mm256_mul_ps(_mm256_set1_ps(scale[0] * dx),
                         _mm256_cvtepi32_ps(_mm256_add_epi32(p[0], p[1])));
}

/* the 8 partial sums of block b of a row times one input block, and its offset lo * s_x */
static inline __attribute__((always_inline)) __m256 block_dot(int fmt, const uint8_t *row, int b,
                                                              const xblock *x, float *offset) {
    float scale[2], lo;
    __m128i v[2];
    __m256i p[2];
    block_halves(fmt, row, b, v, scale, &lo);
    int_products(v, x->q, p);
    *offset += lo * x->s;
    return scaled(fmt, p, scale, x->d);
}

/* one row times one input row, two blocks at a time into two accumulators (independent sums) */
static inline __attribute__((always_inline)) float dot_one(int fmt, const uint8_t *row, int nb,
                                                           const xblock *x) {
    __m256 acc[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()};
    float offset[2] = {0, 0};
    int b = 0;
    for (; b + 1 < nb; b += 2)
        for (int t = 0; t < 2; t++)
            acc[t] = _mm256_add_ps(acc[t], block_dot(fmt, row, b + t, x + b + t, offset + t));
    if (b < nb) acc[0] = _mm256_add_ps(acc[0], block_dot(fmt, row, b, x + b, offset));
    return hsum(_mm256_add_ps(acc[0], acc[1])) + offset[0] + offset[1];
}

/* one row times XT input rows: each weight block is unpacked once for all of them */
static inline __attribute__((always_inline)) void
dot_tile(int fmt, const uint8_t *row, int nb, const xblock *x, float *y, long ldy) {
    __m256 acc[XT];
    float offset[XT];
    for (int i = 0; i < XT; i++) {
        acc[i] = _mm256_setzero_ps();
        offset[i] = 0;
    }
    for (int b = 0; b < nb; b++) {
        float scale[2], lo;
        __m128i v[2];
        __m256i p[2];
        block_halves(fmt, row, b, v, scale, &lo);
        for (int i = 0; i < XT; i++) {
            const xblock *xb = x + (long)i * nb + b;
            int_products(v, xb->q, p);
            acc[i] = _mm256_add_ps(acc[i], scaled(fmt, p, scale, xb->d));
            offset[i] += lo * xb->s;
        }
    }
    for (int i = 0; i < XT; i++) y[i * ldy] = hsum(acc[i]) + offset[i];
}

static inline __attribute__((always_inline)) void
dots_format(int fmt, const uint8_t *row, int nb, const xblock *x, int m, float *y, long ldy) {
    int i = 0;
    for (; i + XT <= m; i += XT) dot_tile(fmt, row, nb, x + (long)i * nb, y + i * ldy, ldy);
    for (; i < m; i++) y[i * ldy] = dot_one(fmt, row, nb, x + (long)i * nb);
}

/* y[i * ldy] = row · x_i for the m input rows x_i (nb blocks each) */
static void row_dots(int fmt, const uint8_t *row, int nb, const xblock *x, int m, float *y,
                     long ldy) {
    switch (fmt) {
    case Q4_0: dots_format(Q4_0, row, nb, x, m, y, ldy); break;
    case Q4_1: dots_format(Q4_1, row, nb, x, m, y, ldy); break;
    case Q8_0: dots_format(Q8_0, row, nb, x, m, y, ldy); break;
    case Q4_K: dots_format(Q4_K, row, nb, x, m, y, ldy); break;
    default: dots_format(Q6_K, row, nb, x, m, y, ldy);
    }
}
#else
static void row_dots(int fmt, const uint8_t *row, int nb, const xblock *x, int m, float *y,
                     long ldy) {
    for (int i = 0; i < m; i++) y[i * ldy] = 0;
    for (int b = 0; b < nb; b++) {
        wblock w;
        block_ints(fmt, row, b, &w);
        for (int i = 0; i < m; i++) {
            const xblock *xb = x + (long)i * nb + b;
            int32_t s[2] = {0, 0};
            for (int j = 0; j < 32; j++) s[j / 16] += w.v[j] * xb->q[j];
            y[i * ldy] += xb->d * (w.scale[0] * s[0] + w.scale[1] * s[1]) + w.lo * xb->s;
        }
    }
}
#endif

/* ---- F16/BF16: widened per block, multiplied in float32 ----------------------------------- */

/* y[i, r] for the input rows i0 .. i0 + mt - 1 (mt <= TILE) */
static void float_row_times_inputs(int fmt, const uint8_t *row, int k, const float *x, int mt,
                                   float *y, long ldy) {
    float acc[TILE] = {0}, w[32];
    for (int b = 0; b < k / 32; b++) {
        block_values(fmt, row, b, w);
        for (int i = 0; i < mt; i++) {
            const float *xb = x + (long)i * k + 32 * b;
#ifdef __AVX2__
            __m256 a = _mm256_mul_ps(_mm256_loadu_ps(w), _mm256_loadu_ps(xb));
            for (int t = 1; t < 4; t++)
                a = _mm256_fmadd_ps(_mm256_loadu_ps(w + 8 * t), _mm256_loadu_ps(xb + 8 * t), a);
            acc[i] += hsum(a);
#else
            float s = 0;
            for (int j = 0; j < 32; j++) s += w[j] * xb[j];
            acc[i] += s;
#endif
        }
    }
    for (int i = 0; i < mt; i++) y[i * ldy] = acc[i];
}

/* ---- entry points ------------------------------------------------------------------------- */

/* column r of y (ldy apart per input row) from one stored weight row */
static void product_row(int fmt, const uint8_t *row, int k, const float *x, const xblock *xq,
                        int m, float *y, long ldy) {
    if (is_float(fmt)) {
        for (int i0 = 0; i0 < m; i0 += TILE)
            float_row_times_inputs(fmt, row, k, x + (long)i0 * k, m - i0 < TILE ? m - i0 : TILE,
                                   y + i0 * ldy, ldy);
        return;
    }
    row_dots(fmt, row, k / 32, xq, m, y, ldy);
}

/* ---- preparing the input rows ------------------------------------------------------------ */

enum { PREP_NONE = 0, PREP_RMSNORM = 1, PREP_SILU_MUL = 2 };

static float dot_f32(const float *a, const float *b, int n) {
    int j = 0;
    float s = 0;
#ifdef __AVX2__
    __m256 acc = _mm256_setzero_ps();
    for (; j + 8 <= n; j += 8)
        acc = _mm256_fmadd_ps(_mm256_loadu_ps(a + j), _mm256_loadu_ps(b + j), acc);
    s = hsum(acc);
#endif
    for (; j < n; j++) s += a[j] * b[j];
    return s;
}

/* out [m, k] from x: RMSNorm with weight `norm` (prep 1; x [m, k]) or silu(gate) · up (prep 2;
   x [m, 2k], gate first) */
static void prepare(int prep, const float *x, int m, int k, const float *norm, float eps,
                    float offset, float *out) {
    for (int i = 0; i < m; i++) {
        float *o = out + (long)i * k;
        if (prep == PREP_RMSNORM) {
            const float *r = x + (long)i * k;
            float inv = 1.0f / sqrtf(dot_f32(r, r, k) / k + eps);
            for (int j = 0; j < k; j++) o[j] = r[j] * inv * (offset + norm[j]);
        } else {
            const float *g = x + (long)i * 2 * k, *u = g + k;
            for (int j = 0; j < k; j++) o[j] = g[j] / (1.0f + expf(-g[j])) * u[j];
        }
    }
}

/* ---- float32 rows ------------------------------------------------------------------------- */

/* s[t][i] = W_t · x_i for the F32_ROWS weight rows `wr` and the input rows x_0 .. x_{mi-1}
   (ldx apart), mi <= F32_INPUTS: F32_ROWS · mi sums held in registers, so each step of 8 reads
   F32_ROWS + mi vectors for F32_ROWS · mi products. Inlined with a constant mi. */
static inline __attribute__((always_inline)) void
f32_tile(const float *const *wr, const float *x, long ldx, int mi, int k,
         float s[F32_ROWS][F32_INPUTS]) {
    int j = 0;
    for (int t = 0; t < F32_ROWS; t++)
        for (int i = 0; i < mi; i++) s[t][i] = 0;
#ifdef __AVX2__
    __m256 acc[F32_ROWS][F32_INPUTS];
    for (int t = 0; t < F32_ROWS; t++)
        for (int i = 0; i < mi; i++) acc[t][i] = _mm256_setzero_ps();
    for (; j + 8 <= k; j += 8) {
        __m256 xv[F32_INPUTS];
        for (int i = 0; i < mi; i++) xv[i] = _mm256_loadu_ps(x + i * ldx + j);
        for (int t = 0; t < F32_ROWS; t++) {
            __m256 wv = _mm256_loadu_ps(wr[t] + j);
            for (int i = 0; i < mi; i++) acc[t][i] = _mm256_fmadd_ps(wv, xv[i], acc[t][i]);
        }
    }
    for (int t = 0; t < F32_ROWS; t++)
        for (int i = 0; i < mi; i++) s[t][i] = hsum(acc[t][i]);
#endif
    for (; j < k; j++)
        for (int t = 0; t < F32_ROWS; t++)
            for (int i = 0; i < mi; i++) s[t][i] += wr[t][j] * x[i * ldx + j];
}

/* y[i, r] = W[r] · x_i for the rows r in [a, b) of a float32 weight [n, k] (rows: which stored
   row is row r, NULL: the same), every input row i < m: F32_ROWS weight rows at a time, each
   read from memory once and multiplied with the input rows F32_INPUTS at a time */
static void f32_rows(const uint8_t *w, const int32_t *rows, long a, long b, int k, const float *x,
                     int m, float *y, long ldy) {
    for (long r0 = a; r0 < b; r0 += F32_ROWS) {
        int nr = b - r0 < F32_ROWS ? (int)(b - r0) : F32_ROWS;
        const float *wr[F32_ROWS]; /* a last partial group repeats its last row */
        for (int t = 0; t < F32_ROWS; t++) {
            long r = r0 + (t < nr ? t : nr - 1);
            wr[t] = (const float *)w + (long)k * (rows ? rows[r] : r);
        }
        for (int i0 = 0; i0 < m; i0 += F32_INPUTS) {
            int mi = m - i0 < F32_INPUTS ? m - i0 : F32_INPUTS;
            const float *xi = x + (long)i0 * k;
            float s[F32_ROWS][F32_INPUTS];
            if (mi == 2) f32_tile(wr, xi, k, 2, k, s);
            else f32_tile(wr, xi, k, 1, k, s);
            for (int i = 0; i < mi; i++)
                for (int t = 0; t < nr; t++) y[(i0 + i) * ldy + r0 + t] = s[t][i];
        }
    }
}

/* y[i, c] = Σ_j x[i, j] · W[j, c] for the columns c in [a, b) of a float32 weight stored as
   [k, n] (an nn.Linear weight [n, k] in column-major order, as the LM head is): the rows of W
   are read in order, four at a time, each into the same block of y */
static void f32_columns(const float *w, long n, long a, long b, int k, const float *x, int m,
                        float *y, long ldy) {
    for (long c0 = a; c0 < b; c0 += COLUMN_BLOCK) {
        long c1 = c0 + COLUMN_BLOCK < b ? c0 + COLUMN_BLOCK : b;
        for (int i = 0; i < m; i++) memset(y + i * ldy + c0, 0, sizeof(float) * (c1 - c0));
        for (int j = 0; j < k; j += 4) {
            int nj = k - j < 4 ? k - j : 4;
            const float *wj = w + (long)j * n;
            for (int i = 0; i < m; i++) {
                const float *xi = x + (long)i * k + j;
                float *yi = y + i * ldy;
                long c = c0;
#ifdef __AVX2__
                if (nj == 4) {
                    __m256 x0 = _mm256_set1_ps(xi[0]), x1 = _mm256_set1_ps(xi[1]);
                    __m256 x2 = _mm256_set1_ps(xi[2]), x3 = _mm256_set1_ps(xi[3]);
                    for (; c + 8 <= c1; c += 8) {
                        __m256 s = _mm256_loadu_ps(yi + c);
                        s = _mm256_fmadd_ps(x0, _mm256_loadu_ps(wj + c), s);
                        s = _mm256_fmadd_ps(x1, _mm256_loadu_ps(wj + n + c), s);
                        s = _mm256_fmadd_ps(x2, _mm256_loadu_ps(wj + 2 * n + c), s);
                        s = _mm256_fmadd_ps(x3, _mm256_loadu_ps(wj + 3 * n + c), s);
                        _mm256_storeu_ps(yi + c, s);
                    }
                }
#endif
                for (; c < c1; c++)
                    for (int t = 0; t < nj; t++) yi[c] += xi[t] * wj[t * n + c];
            }
        }
    }
}

/* ---- a pool of worker threads ------------------------------------------------------------- */

/* A job is `chunks` independent pieces of work, fn(arg, 0 .. chunks - 1). The caller publishes it
   in one atomic word, `claim` = generation << 32 | chunks << 16 | next chunk, then claims chunks
   itself like any worker: claiming is a compare-and-swap of that word that takes chunk `next`
   only if the generation is still this job's and next < chunks, so a late worker can never take
   a piece of a job that is over. Every finished chunk counts in `finished`; the caller waits until
   finished == chunks, that is, only for chunks already claimed by a worker that is running them:
   a worker the OS has descheduled costs at most the chunk it holds, never the whole call (an
   OpenMP team ends in a barrier that waits for every member, started or not).
   Workers are created on the first job that wants them and stay alive. Between jobs they spin
   for SPIN_NS (the gap between two products of a decoding step), then sleep on a condition
   variable, so an idle process burns no CPU. One job runs at a time: a caller that finds the
   pool busy (another thread of the process is multiplying) runs its chunks alone.
   On a machine with more runnable threads than cores a team is slower than one thread (the
   workers take CPU time from the caller, or stall it). The caller sees that from its own thread:
   if, while running jobs, it got less than SHARE_MIN of a core (thread CPU time over wall time,
   summed over WINDOW_NS of jobs), it runs alone for SOLO_NS (the workers go to sleep), then
   tries the team again.
   Products of several input rows (a text's pass: `trace`, `embed`, a prompt) run between torch's
   own operations, whose OpenMP threads spin on the cores between them: there the chunks are
   claimed by torch's OpenMP team instead (quant.c is linked against torch's libgomp when it
   has one, so the team is the same threads), which is already running where the pool's workers
   would wait for a core. */

#define SPIN_NS 50000L
#define MAX_WORKERS 63
#define WINDOW_NS 20000000L
#define SOLO_NS 200000000L
#define SHARE_MIN 0.85

typedef void (*chunk_fn)(void *arg, int chunk);

static struct {
    pthread_mutex_t submit, sleep; /* one job at a time; the sleepers' lock */
    pthread_cond_t wake;
    _Atomic uint64_t claim;
    _Atomic int finished, sleepers, helpers; /* helpers: workers that join the current job */
    int started;                             /* workers created (under `submit`) */
    int forked;                              /* this process is a fork's child */
    long wall, cpu, solo_until;              /* the caller's share of a core (under `submit`) */
    chunk_fn fn;                             /* the current job, set before it is published */
    void *arg;
} pool = {.submit = PTHREAD_MUTEX_INITIALIZER, .sleep = PTHREAD_MUTEX_INITIALIZER,
          .wake = PTHREAD_COND_INITIALIZER};

static void relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ volatile("yield");
#endif
}

static long clock_ns(clockid_t clock) {
    struct timespec t;
    clock_gettime(clock, &t);
    return t.tv_sec * 1000000000L + t.tv_nsec;
}

static long now_ns(void) { return clock_ns(CLOCK_MONOTONIC); }

/* claim and run chunks of job `gen` until none is left */
static void run_chunks(uint32_t gen) {
    uint64_t c = atomic_load(&pool.claim);
    while (c >> 32 == gen && (c & 0xffff) < ((c >> 16) & 0xffff)) {
        if (atomic_compare_exchange_weak(&pool.claim, &c, c + 1)) {
            pool.fn(pool.arg, (int)(c & 0xffff));
            atomic_fetch_add_explicit(&pool.finished, 1, memory_order_release);
            c = atomic_load(&pool.claim);
        }
    }
}

/* the claim word once a job newer than `seen` is published: spin a while, then sleep */
static uint64_t next_job(uint32_t seen) {
    uint64_t c;
    for (long start = now_ns(), i = 0;; i++) {
        if ((c = atomic_load(&pool.claim)) >> 32 != seen) return c;
        if (i % 64 == 63 && now_ns() - start > SPIN_NS) break;
        relax();
    }
    pthread_mutex_lock(&pool.sleep);
    atomic_fetch_add(&pool.sleepers, 1);
    while ((c = atomic_load(&pool.claim)) >> 32 == seen) pthread_cond_wait(&pool.wake, &pool.sleep);
    atomic_fetch_sub(&pool.sleepers, 1);
    pthread_mutex_unlock(&pool.sleep);
    return c;
}

static void *worker(void *arg) {
    int id = (int)(intptr_t)arg;
#ifdef __linux__
    pthread_setname_np(pthread_self(), "contextlens-mm"); /* as `ps -L` and /proc show it */
#endif
    for (uint32_t seen = 0;;) {
        seen = (uint32_t)(next_job(seen) >> 32);
        if (id < atomic_load(&pool.helpers)) run_chunks(seen);
    }
    return NULL;
}

/* a forked child has only the thread that forked: it starts its own workers */
static void forget_workers(void) {
    pool.forked = 1; /* libgomp's team does not survive a fork either: the pool only, from now */
    pthread_mutex_init(&pool.submit, NULL);
    pthread_mutex_init(&pool.sleep, NULL);
    pthread_cond_init(&pool.wake, NULL);
    atomic_store(&pool.sleepers, 0);
    pool.started = 0;
}

__attribute__((constructor)) static void watch_forks(void) {
    pthread_atfork(NULL, NULL, forget_workers); /* from the moment the library is loaded */
}

/* at least `count` workers (as many as can be created); under `submit` */
static void start_workers(int count) {
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    for (pthread_t t; pool.started < count && pool.started < MAX_WORKERS; pool.started++)
        if (pthread_create(&t, &attr, worker, (void *)(intptr_t)pool.started)) break;
    pthread_attr_destroy(&attr);
}

/* publish job fn(arg, ·) of `chunks` chunks for `helpers` of the pool's workers; its generation */
static uint32_t publish(chunk_fn fn, void *arg, int chunks, int helpers) {
    pool.fn = fn;
    pool.arg = arg;
    atomic_store(&pool.finished, 0);
    atomic_store(&pool.helpers, helpers);
    uint32_t gen = (uint32_t)(atomic_load(&pool.claim) >> 32) + 1;
    atomic_store(&pool.claim, (uint64_t)gen << 32 | (uint64_t)chunks << 16);
    return gen;
}

/* fn(arg, c) for every chunk c < chunks (at most 65535), on `threads` threads the caller
   included (torch's OpenMP team with `shared_team`, where compiled with OpenMP); returns once
   every chunk is done */
static void run_job(chunk_fn fn, void *arg, int chunks, int threads, int shared_team) {
    int team = threads > 1 && chunks > 1 && !pthread_mutex_trylock(&pool.submit);
    long wall = team ? now_ns() : 0;
    if (team && wall < pool.solo_until) {
        pthread_mutex_unlock(&pool.submit);
        team = 0;
    }
    if (!team) {
        for (int c = 0; c < chunks; c++) fn(arg, c);
        return;
    }
#ifdef _OPENMP
    if (shared_team && !pool.forked) {
        uint32_t gen = publish(fn, arg, chunks, 0);
#pragma omp parallel num_threads(threads) /* ends once every chunk is done; no pool worker */
        run_chunks(gen);                       /* joins: helpers is 0 before the claim is seen */
        pthread_mutex_unlock(&pool.submit);
        return;
    }
#endif
    long cpu = clock_ns(CLOCK_THREAD_CPUTIME_ID);
    start_workers(threads - 1);
    uint32_t gen = publish(fn, arg, chunks, threads - 1);
    if (atomic_load(&pool.sleepers)) {
        pthread_mutex_lock(&pool.sleep);
        pthread_cond_broadcast(&pool.wake);
        pthread_mutex_unlock(&pool.sleep);
    }
    run_chunks(gen);
    for (long start = now_ns(), i = 0;
         atomic_load_explicit(&pool.finished, memory_order_acquire) < chunks; i++) {
        if (i % 64 == 63 && now_ns() - start > SPIN_NS)
            sched_yield(); /* a descheduled worker may be waiting for this core */
        else
            relax();
    }
    long end = now_ns();
    pool.wall += end - wall;
    pool.cpu += clock_ns(CLOCK_THREAD_CPUTIME_ID) - cpu;
    if (pool.wall > WINDOW_NS) {
        if (pool.cpu < SHARE_MIN * pool.wall) pool.solo_until = end + SOLO_NS;
        pool.wall = pool.cpu = 0;
    }
    pthread_mutex_unlock(&pool.submit);
}

/* ---- the product over output rows, in chunks ----------------------------------------------- */

/* output rows per chunk (a multiple of `align`) when `parts` groups of n rows are shared by a
   team of `team` threads, CHUNKS_PER_THREAD chunks each; all n rows in one chunk alone */
static long chunk_rows(long n, long parts, int team, int align) {
    if (team <= 1) return n;
    long per = (n * parts + CHUNKS_PER_THREAD * team - 1) / (CHUNKS_PER_THREAD * team);
    return (per + align - 1) / align * align;
}

typedef struct {
    int parts, k, m;
    const int *fmt, *n;
    const uint8_t *const *w;
    const int32_t *const *rows;
    const float *x;
    const xblock *xq;
    float *y;
    long ldy, rows_per_chunk;
} product;

/* the output rows [rows_per_chunk · c, …) of every input row, across the parts */
static void product_chunk(void *arg, int c) {
    const product *job = arg;
    long lo = job->rows_per_chunk * c, hi = lo + job->rows_per_chunk, col = 0;
    hi = hi < job->ldy ? hi : job->ldy;
    for (int p = 0; p < job->parts; col += job->n[p], p++) {
        long a = lo > col ? lo - col : 0, b = hi - col < job->n[p] ? hi - col : job->n[p];
        if (a >= b) continue;
        long rb = row_bytes(job->fmt[p], job->k);
        const int32_t *rows = job->rows[p];
        if (job->fmt[p] == F32) {
            f32_rows(job->w[p], rows, a, b, job->k, job->x, job->m, job->y + col, job->ldy);
            continue;
        }
        if (job->fmt[p] == F32_COLUMNS) {
            const float *w = (const float *)job->w[p];
            f32_columns(w, job->n[p], a, b, job->k, job->x, job->m, job->y + col, job->ldy);
            continue;
        }
        for (long r = a; r < b; r++)
            product_row(job->fmt[p], job->w[p] + rb * (rows ? rows[r] : r), job->k, job->x,
                        job->xq, job->m, job->y + col + r, job->ldy);
    }
}

int cl_matmul(int parts, const int *fmt, const uint8_t *const *w, const int32_t *const *rows,
              const int *n, int k, const float *x, int m, float *y, int threads, int prep,
              const float *norm, float eps, float offset, int accumulate) {
    long ldy = 0;
    int quantised = 0;
    for (int p = 0; p < parts; p++) {
        if (row_bytes(fmt[p], k) < 0) return -1;
        ldy += n[p];
        quantised |= !is_float(fmt[p]) && fmt[p] != F32 && fmt[p] != F32_COLUMNS;
        if (fmt[p] == F32_COLUMNS && rows[p]) return -1; /* columns are taken in order */
    }
    float *xp = NULL, *acc = NULL;
    xblock *xq = NULL;
    if (prep != PREP_NONE) {
        xp = malloc(sizeof(float) * (size_t)m * k);
        if (!xp) return -2;
        prepare(prep, x, m, k, norm, eps, offset, xp);
        x = xp;
    }
    if (accumulate) { /* the product goes to a scratch row first, then adds into y */
        acc = malloc(sizeof(float) * (size_t)m * ldy);
        if (!acc) { free(xp); return -2; }
    }
    if (quantised) {
        xq = malloc(sizeof(xblock) * (size_t)m * (k / 32));
        if (!xq) { free(xp); free(acc); return -2; }
        for (long b = 0; b < (long)m * (k / 32); b++) quantize_block(x + 32 * b, xq + b);
    }
    product job = {parts, k, m, fmt, n, w, rows, x, xq, acc ? acc : y, ldy, ldy};
    int team = ldy * k * m >= PARALLEL_MIN ? threads : 1;
    job.rows_per_chunk = chunk_rows(ldy, 1, team, CHUNK_ALIGN);
    run_job(product_chunk, &job, (int)((ldy + job.rows_per_chunk - 1) / job.rows_per_chunk), team,
            m > 1);
    if (acc)
        for (long j = 0; j < (long)m * ldy; j++) y[j] += acc[j];
    free(xq);
    free(xp);
    free(acc);
    return 0;
}

typedef struct {
    int fmt, k;
    long rb, rows_per_chunk, n;
    const uint8_t *w;
    const int32_t *rows;
    float *out;
} dequant;

static void dequant_chunk(void *arg, int c) {
    const dequant *job = arg;
    long hi = job->rows_per_chunk * (c + 1) < job->n ? job->rows_per_chunk * (c + 1) : job->n;
    for (long r = job->rows_per_chunk * c; r < hi; r++) {
        const uint8_t *row = job->w + job->rb * (job->rows ? job->rows[r] : r);
        for (int b = 0; b < job->k / 32; b++)
            block_values(job->fmt, row, b, job->out + r * job->k + 32 * b);
    }
}

int cl_dequant(int fmt, const uint8_t *w, const int32_t *rows, int n, int k, float *out,
               int threads) {
    long rb = row_bytes(fmt, k);
    if (rb < 0 || fmt == F32 || fmt == F32_COLUMNS) return -1;
    if (n == 0) return 0;
    int team = (long)n * k >= PARALLEL_MIN ? threads : 1;
    long per = chunk_rows(n, 1, team, 1);
    dequant job = {fmt, k, rb, per, n, w, rows, out};
    run_job(dequant_chunk, &job, (int)((n + per - 1) / per), team, 0);
    return 0;
}

/* ---- float32 rows summed as the BLAS sums them -------------------------------------------- */

/* cl_linear: y[i, r] = b[r] + Σ_j x[i, j] · W[r, j] for a float32 weight W [n, k] (row-major,
   an nn.Linear weight), each sum taken in one fixed order: the j are split into blocks of `kc`
   (the last may be shorter; a k between kc and 2·kc is split into halves, k / 2 rounded down,
   and the rest); each block is one chain of fused multiply-adds from 0, j in order,
   and the blocks are added in order to a total that starts at b[r] (at 0 without a bias). That
   is how MKL's sgemm sums on AVX2 machines for 12 or more input rows (blocks of 192), so where
   nn/quant.py's probe finds that order (`blas_block`) the products equal F.linear's bit for bit;
   the probe decides, not this file. The lanes of a vector are 8 input rows: each step
   broadcasts one weight value to them, so every sum stays its own chain, and a weight row is read
   once, in order, for each 16 input rows. */

#define CHAIN_ROWS 6   /* weight rows per register tile, */
#define CHAIN_LANES 16 /* times this many input rows (6 × 2 vectors of sums, 2 of inputs); a last
                          tile of 8 rows or fewer is 8 wide */
#define CHAIN_PANEL 64 /* input rows per chunk: their inputs stay in cache across a chunk's
                          weight rows, and the weight rows are read once per panel */

typedef struct {
    const float *xt, *w, *bias; /* xt: tiles of input rows, each [k][its width], zero-padded */
    float *y;                   /* [m, n] */
    int m, k, kc, panel; /* panel: input rows per chunk */
    long n, rows_per_chunk, row_chunks;
} chain;

/* s[t][l] = Σ_{k0 <= j < k1} W_t[j] · x_l[j], one fused chain per sum, for the CHAIN_ROWS rows
   `wr` and the `lanes` (16 or 8) input rows of tile `xt`; meanwhile the same columns of the next
   CHAIN_ROWS weight rows (`next`, k apart; NULL: none) are fetched into cache (a weight read
   once per pass otherwise arrives at half the memory's speed: 6.1 -> 8.4 GB/s on one thread) */
static inline __attribute__((always_inline)) void
chain_block(const float *const *wr, const float *next, long k, const float *xt, int lanes, int k0,
            int k1, float s[CHAIN_ROWS][CHAIN_LANES]) {
#ifdef __AVX2__
    int v = lanes / 8;
    __m256 acc[CHAIN_ROWS][2];
    for (int t = 0; t < CHAIN_ROWS; t++) acc[t][0] = acc[t][1] = _mm256_setzero_ps();
    for (int j = k0; j < k1; j++) {
        if (next && j % 16 == 0) /* one cache line of each row */
            for (int t = 0; t < CHAIN_ROWS; t++) _mm_prefetch((const char *)(next + t * k + j), _MM_HINT_T0);
        __m256 xv[2];
        for (int u = 0; u < v; u++) xv[u] = _mm256_loadu_ps(xt + j * lanes + 8 * u);
        for (int t = 0; t < CHAIN_ROWS; t++) {
            __m256 wv = _mm256_set1_ps(wr[t][j]); /* not _mm256_broadcast_ss: 2.5× slower here */
            for (int u = 0; u < v; u++) acc[t][u] = _mm256_fmadd_ps(xv[u], wv, acc[t][u]);
        }
    }
    for (int t = 0; t < CHAIN_ROWS; t++)
        for (int u = 0; u < v; u++) _mm256_storeu_ps(s[t] + 8 * u, acc[t][u]);
#else
    for (int t = 0; t < CHAIN_ROWS; t++)
        for (int l = 0; l < lanes; l++) {
            float a = 0;
            for (int j = k0; j < k1; j++) a = fmaf(xt[j * lanes + l], wr[t][j], a);
            s[t][l] = a;
        }
#endif
}

/* the width of the tile of input rows that starts at row i0 (it lies at xt + i0 · k) */
static int chain_lanes(int m, int i0) { return m - i0 > 8 ? CHAIN_LANES : 8; }

/* the output columns of one range of weight rows for the input rows of one panel, CHAIN_ROWS
   weight rows at a time: for each tile, the blocks of k in order, each block's sums added to
   running totals that start at the bias */
static void chain_chunk(void *arg, int c) {
    const chain *job = arg;
    int k = job->k, p0 = c / job->row_chunks * job->panel;
    int p1 = p0 + job->panel < job->m ? p0 + job->panel : job->m;
    long a = job->rows_per_chunk * (c % job->row_chunks);
    long b = a + job->rows_per_chunk < job->n ? a + job->rows_per_chunk : job->n;
    for (long r0 = a; r0 < b; r0 += CHAIN_ROWS) {
        int nr = b - r0 < CHAIN_ROWS ? (int)(b - r0) : CHAIN_ROWS;
        const float *wr[CHAIN_ROWS]; /* a last partial group repeats its last row */
        for (int t = 0; t < CHAIN_ROWS; t++) wr[t] = job->w + (long)k * (r0 + (t < nr ? t : nr - 1));
        const float *next = r0 + 2 * CHAIN_ROWS <= b ? wr[0] + CHAIN_ROWS * (long)k : NULL;
        for (int i0 = p0, lanes; i0 < p1; i0 += lanes) {
            lanes = chain_lanes(job->m, i0);
            const float *xt = job->xt + (long)i0 * k;
            float total[CHAIN_ROWS][CHAIN_LANES], s[CHAIN_ROWS][CHAIN_LANES];
            for (int t = 0; t < nr; t++) /* only the first nr rows are summed and stored */
                for (int l = 0; l < lanes; l++) total[t][l] = job->bias ? job->bias[r0 + t] : 0;
            for (int k0 = 0; k0 < k; k0 += job->kc) {
                int k1 = k0 + job->kc < k ? k0 + job->kc : k;
                if (lanes == CHAIN_LANES) chain_block(wr, next, k, xt, CHAIN_LANES, k0, k1, s);
                else chain_block(wr, next, k, xt, 8, k0, k1, s);
                for (int t = 0; t < nr; t++)
                    for (int l = 0; l < lanes; l++) total[t][l] += s[t][l];
            }
            int rows = job->m - i0 < lanes ? job->m - i0 : lanes;
            for (int l = 0; l < rows; l++)
                for (int t = 0; t < nr; t++) job->y[(i0 + l) * job->n + r0 + t] = total[t][l];
        }
    }
}

int cl_linear(const float *x, int m, int k, const float *w, long n, const float *bias, float *y,
              int kc, int threads) {
    if (m <= 0 || k <= 0 || n <= 0 || kc <= 0) return -1;
    float *xt = malloc(sizeof(float) * ((size_t)m + CHAIN_LANES) * k);
    if (!xt) return -2;
    for (int i0 = 0, lanes; i0 < m; i0 += lanes) { /* tile i0 at xt + i0 * k, [k][lanes] */
        lanes = chain_lanes(m, i0);
        for (int j = 0; j < k; j++) /* written in order: a tile can outgrow the L1 cache */
            for (int l = 0; l < lanes; l++)
                xt[(long)i0 * k + j * lanes + l] = i0 + l < m ? x[(long)(i0 + l) * k + j] : 0;
    }
    kc = k >= 2 * kc ? kc : k > kc ? k / 2 : k; /* k between kc and 2·kc: two halves */
    chain job = {.xt = xt, .w = w, .bias = bias, .y = y, .m = m, .k = k, .kc = kc,
                 .panel = CHAIN_PANEL, .n = n};
    int team = n * k * m >= PARALLEL_MIN ? threads : 1;
    long panels = (m + job.panel - 1) / job.panel;
    job.rows_per_chunk = chunk_rows(n, panels, team, CHAIN_ROWS);
    job.row_chunks = (n + job.rows_per_chunk - 1) / job.rows_per_chunk;
    while (panels * job.row_chunks > 65535) { /* run_job's bound on chunks: wider chunks */
        job.panel *= 2, panels = (m + job.panel - 1) / job.panel;
        job.rows_per_chunk *= 2, job.row_chunks = (n + job.rows_per_chunk - 1) / job.rows_per_chunk;
    }
    run_job(chain_chunk, &job, (int)(panels * job.row_chunks), team, 1);
    free(xt);
    return 0;
}

/* ---- one new token's attention ------------------------------------------------------------ */

/* RoPE on `heads` heads of width d laid side by side in x (the queries then the keys of a fused
   Q/K/V row), in place: cos, sin [d] for this position. Half-split pairs (i, i + d/2), as
   Hugging Face Llama, or with `interleaved` adjacent pairs (2i, 2i + 1):
   x_a' = x_a cos_a - x_b sin_a,  x_b' = x_b cos_b + x_a sin_b */
void cl_rope(float *x, int heads, int d, const float *cos, const float *sin, int interleaved) {
    int half = d / 2;
    for (int h = 0; h < heads; h++) {
        float *v = x + (long)h * d;
        for (int i = 0; i < half; i++) {
            int a = interleaved ? 2 * i : i, b = interleaved ? 2 * i + 1 : i + half;
            float xa = v[a], xb = v[b];
            v[a] = xa * cos[a] - xb * sin[a];
            v[b] = xb * cos[b] + xa * sin[b];
        }
    }
}

/* The new token's keys and values join the cache at position len - 1, then every query head
   attends over positions lo .. len - 1 of its key/value head (grouped-query: head i reads KV head
   i / (h / h_kv)):
     s_j = scale · q · k_j   (softcap > 0: softcap · tanh(s_j / softcap)),   w = softmax(s)
     out = Σ_j w_j v_j
   q [h, d]; k, v [h_kv, d]; kc, vc the layer's cache [h_kv, stride, d]; out [h, d]. */
int cl_attend_one(const float *q, const float *k, const float *v, float *kc, float *vc,
                  long stride, int h, int h_kv, int d, int lo, int len, float scale,
                  float softcap, float *out) {
    float *w = malloc(sizeof(float) * (size_t)(len - lo));
    if (!w) return -2;
    for (int g = 0; g < h_kv; g++) {
        memcpy(kc + ((long)g * stride + len - 1) * d, k + (long)g * d, sizeof(float) * d);
        memcpy(vc + ((long)g * stride + len - 1) * d, v + (long)g * d, sizeof(float) * d);
    }
    for (int i = 0; i < h; i++) {
        const float *qi = q + (long)i * d;
        const float *ki = kc + (long)(i / (h / h_kv)) * stride * d;
        const float *vi = vc + (long)(i / (h / h_kv)) * stride * d;
        float top = -INFINITY, total = 0;
        for (int j = lo; j < len; j++) {
            float s = scale * dot_f32(qi, ki + (long)j * d, d);
            if (softcap > 0) s = softcap * tanhf(s / softcap);
            w[j - lo] = s;
            top = s > top ? s : top;
        }
        for (int j = lo; j < len; j++) total += w[j - lo] = expf(w[j - lo] - top);
        float *o = out + (long)i * d;
        memset(o, 0, sizeof(float) * d);
        for (int j = lo; j < len; j++) {
            float p = w[j - lo] / total;
            const float *vj = vi + (long)j * d;
            for (int c = 0; c < d; c++) o[c] += p * vj[c];
        }
    }
    free(w);
    return 0;
}
