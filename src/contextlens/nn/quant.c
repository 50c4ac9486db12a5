/* Matrix products with weights kept in llama.cpp's block formats, as stored in a GGUF file.

   A weight is [n rows (outputs), k columns (inputs)]; each row is k / 32 blocks of 32 values:
     Q4_0  {f16 d; u8 q[16]}          w = d * (q - 8)     q[j] & 15 is value j, q[j] >> 4 value j + 16
     Q4_1  {f16 d; f16 m; u8 q[16]}   w = d * q + m
     Q8_0  {f16 d; i8 q[32]}          w = d * q
   F16 and BF16 rows are k 16-bit floats.

   cl_matmul:  y[i, r] = sum_j x[i, j] * w[rows[r], j]    x [m, k] float32, y row stride ldy
   cl_dequant: out[r, j] = w[rows[r], j]                  out [n, k] float32
   rows (may be NULL: r itself) reorders or selects stored rows without copying them.
   Activations stay float32: a block is widened to four 8-float vectors, scaled, and multiplied
   into every input row, so each weight is read once per call whatever m is. */

#include <stdint.h>
#include <string.h>
#if defined(__AVX2__) || defined(__F16C__)
#include <immintrin.h>
#endif

enum { F16 = 1, Q4_0 = 2, Q4_1 = 3, Q8_0 = 8, BF16 = 30 };

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

static long row_bytes(int fmt, int k) {
    switch (fmt) {
    case Q4_0: return (long)k / 32 * 18;
    case Q4_1: return (long)k / 32 * 20;
    case Q8_0: return (long)k / 32 * 34;
    case F16: case BF16: return (long)k * 2;
    default: return -1;
    }
}

/* values 32*b .. 32*b + 31 of one row, as floats */
static void block_values(int fmt, const uint8_t *row, int b, float *out) {
    if (fmt == F16 || fmt == BF16) {
        const uint8_t *p = row + (long)b * 64;
        for (int j = 0; j < 32; j++) {
            uint16_t h = load16(p + 2 * j);
            out[j] = fmt == F16 ? half_to_float(h) : bf16_to_float(h);
        }
        return;
    }
    if (fmt == Q8_0) {
        const uint8_t *p = row + (long)b * 34;
        float d = half_to_float(load16(p));
        for (int j = 0; j < 32; j++) out[j] = d * (float)(int8_t)p[2 + j];
        return;
    }
    const uint8_t *p = row + (long)b * (fmt == Q4_0 ? 18 : 20);
    float d = half_to_float(load16(p));
    float lo = fmt == Q4_0 ? -8.0f * d : half_to_float(load16(p + 2));
    const uint8_t *q = p + (fmt == Q4_0 ? 2 : 4);
    for (int j = 0; j < 16; j++) {
        out[j] = d * (float)(q[j] & 15) + lo;
        out[j + 16] = d * (float)(q[j] >> 4) + lo;
    }
}

#ifdef __AVX2__
/* the same 32 values as four vectors of 8 */
static inline void block_vectors(int fmt, const uint8_t *row, int b, __m256 v[4]) {
    if (fmt == F16 || fmt == BF16) {
        float tmp[32];
        block_values(fmt, row, b, tmp);
        for (int t = 0; t < 4; t++) v[t] = _mm256_loadu_ps(tmp + 8 * t);
        return;
    }
    if (fmt == Q8_0) {
        const uint8_t *p = row + (long)b * 34;
        __m256 d = _mm256_set1_ps(half_to_float(load16(p)));
        for (int t = 0; t < 4; t++) {
            __m128i q8 = _mm_loadl_epi64((const __m128i *)(p + 2 + 8 * t));
            v[t] = _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q8)));
        }
        return;
    }
    const uint8_t *p = row + (long)b * (fmt == Q4_0 ? 18 : 20);
    float df = half_to_float(load16(p));
    __m256 d = _mm256_set1_ps(df);
    __m256 lo = _mm256_set1_ps(fmt == Q4_0 ? -8.0f * df : half_to_float(load16(p + 2)));
    __m128i q = _mm_loadu_si128((const __m128i *)(p + (fmt == Q4_0 ? 2 : 4)));
    __m128i mask = _mm_set1_epi8(15);
    __m128i low = _mm_and_si128(q, mask);                    /* values 0..15 */
    __m128i high = _mm_and_si128(_mm_srli_epi16(q, 4), mask); /* values 16..31 */
    __m128i parts[4] = {low, _mm_srli_si128(low, 8), high, _mm_srli_si128(high, 8)};
    for (int t = 0; t < 4; t++) {
        __m256 f = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(parts[t]));
        v[t] = _mm256_fmadd_ps(d, f, lo);
    }
}

static inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* one row times one input row, scales applied per block rather than per value:
   sum_b d_b * (q_b · x_b) + lo_b * sum(x_b), where w = d * q + lo */
static float row_dot(int fmt, const uint8_t *row, int k, const float *x, const float *xsum) {
    __m256 acc = _mm256_setzero_ps();
    float offset = 0;
    int bytes = fmt == Q4_0 ? 18 : fmt == Q4_1 ? 20 : 34;
    for (int b = 0; b < k / 32; b++) {
        const uint8_t *p = row + (long)b * bytes;
        const float *xb = x + 32 * b;
        __m256 x0 = _mm256_loadu_ps(xb), x1 = _mm256_loadu_ps(xb + 8);
        __m256 x2 = _mm256_loadu_ps(xb + 16), x3 = _mm256_loadu_ps(xb + 24);
        __m256i q0, q1, q2, q3;
        float d = half_to_float(load16(p));
        if (fmt == Q8_0) {
            q0 = _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(p + 2)));
            q1 = _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(p + 10)));
            q2 = _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(p + 18)));
            q3 = _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(p + 26)));
        } else {
            __m128i q = _mm_loadu_si128((const __m128i *)(p + (fmt == Q4_0 ? 2 : 4)));
            __m128i low = _mm_and_si128(q, _mm_set1_epi8(15));
            __m128i high = _mm_and_si128(_mm_srli_epi16(q, 4), _mm_set1_epi8(15));
            q0 = _mm256_cvtepu8_epi32(low);
            q1 = _mm256_cvtepu8_epi32(_mm_srli_si128(low, 8));
            q2 = _mm256_cvtepu8_epi32(high);
            q3 = _mm256_cvtepu8_epi32(_mm_srli_si128(high, 8));
            offset += (fmt == Q4_0 ? -8.0f * d : half_to_float(load16(p + 2))) * xsum[b];
        }
        __m256 s = _mm256_mul_ps(_mm256_cvtepi32_ps(q0), x0);
        __m256 t = _mm256_mul_ps(_mm256_cvtepi32_ps(q1), x1);
        s = _mm256_fmadd_ps(_mm256_cvtepi32_ps(q2), x2, s);
        t = _mm256_fmadd_ps(_mm256_cvtepi32_ps(q3), x3, t);
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_add_ps(s, t), acc);
    }
    return hsum(acc) + offset;
}

#endif

#define TILE 8 /* input rows multiplied per pass over a weight row */
/* smaller products run on one thread: waking a team costs more than it saves, and on a shared
   machine one descheduled thread stalls the whole team */
#define PARALLEL_MIN (1L << 20)

/* y[i, r] for the input rows i0 .. i0 + mt - 1 (mt <= TILE) */
static void row_times_inputs(int fmt, const uint8_t *row, int k, const float *x, int mt,
                             float *y, long ldy) {
    int nb = k / 32;
#ifdef __AVX2__
    __m256 acc[TILE];
    for (int i = 0; i < mt; i++) acc[i] = _mm256_setzero_ps();
    for (int b = 0; b < nb; b++) {
        __m256 w[4];
        block_vectors(fmt, row, b, w);
        for (int i = 0; i < mt; i++) {
            const float *xb = x + (long)i * k + 32 * b;
            __m256 a = _mm256_mul_ps(w[0], _mm256_loadu_ps(xb));
            a = _mm256_fmadd_ps(w[1], _mm256_loadu_ps(xb + 8), a);
            a = _mm256_fmadd_ps(w[2], _mm256_loadu_ps(xb + 16), a);
            acc[i] = _mm256_add_ps(acc[i], _mm256_fmadd_ps(w[3], _mm256_loadu_ps(xb + 24), a));
        }
    }
    for (int i = 0; i < mt; i++) y[i * ldy] = hsum(acc[i]);
#else
    float acc[TILE] = {0}, w[32];
    for (int b = 0; b < nb; b++) {
        block_values(fmt, row, b, w);
        for (int i = 0; i < mt; i++) {
            const float *xb = x + (long)i * k + 32 * b;
            float s = 0;
            for (int j = 0; j < 32; j++) s += w[j] * xb[j];
            acc[i] += s;
        }
    }
    for (int i = 0; i < mt; i++) y[i * ldy] = acc[i];
#endif
}

int cl_matmul(int fmt, const uint8_t *w, const int32_t *rows, int n, int k, const float *x,
              int m, float *y, long ldy, int threads) {
    long rb = row_bytes(fmt, k);
    if (rb < 0 || k % 32) return -1;
#ifdef __AVX2__
    if (m == 1 && (fmt == Q4_0 || fmt == Q4_1 || fmt == Q8_0)) { /* generation: one token */
        float xsum[k / 32];
        for (int b = 0; b < k / 32; b++) {
            xsum[b] = 0;
            for (int j = 0; j < 32; j++) xsum[b] += x[32 * b + j];
        }
#pragma omp parallel for num_threads(threads) schedule(static) if ((long)n * k >= PARALLEL_MIN)
        for (int r = 0; r < n; r++) y[r] = row_dot(fmt, w + rb * (rows ? rows[r] : r), k, x, xsum);
        return 0;
    }
#endif
#pragma omp parallel for num_threads(threads) schedule(static) if ((long)n * k >= PARALLEL_MIN)
    for (int r = 0; r < n; r++) {
        const uint8_t *row = w + rb * (rows ? rows[r] : r);
        for (int i0 = 0; i0 < m; i0 += TILE) {
            int mt = m - i0 < TILE ? m - i0 : TILE;
            row_times_inputs(fmt, row, k, x + (long)i0 * k, mt, y + (long)i0 * ldy + r, ldy);
        }
    }
    return 0;
}

int cl_dequant(int fmt, const uint8_t *w, const int32_t *rows, int n, int k, float *out,
               int threads) {
    long rb = row_bytes(fmt, k);
    if (rb < 0 || k % 32) return -1;
#pragma omp parallel for num_threads(threads) schedule(static) if ((long)n * k >= PARALLEL_MIN)
    for (int r = 0; r < n; r++) {
        const uint8_t *row = w + rb * (rows ? rows[r] : r);
        for (int b = 0; b < k / 32; b++) block_values(fmt, row, b, out + (long)r * k + 32 * b);
    }
    return 0;
}
