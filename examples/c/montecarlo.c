/* Monte Carlo estimate of pi with an in-program PRNG (xorshift64*), seeded from argv.
 * usage: montecarlo [samples=20000000] [seed=42]
 * Prints the estimate and writes it to /output/pi.txt when /output exists. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static uint64_t state;

static uint64_t next_u64(void) {
    state ^= state >> 12;
    state ^= state << 25;
    state ^= state >> 27;
    return state * 0x2545F4914F6CDD1DULL;
}

static double next_unit(void) { return (double)(next_u64() >> 11) * (1.0 / 9007199254740992.0); }

int main(int argc, char **argv) {
    long long samples = argc > 1 ? atoll(argv[1]) : 20000000LL;
    uint64_t seed = argc > 2 ? strtoull(argv[2], NULL, 10) : 42;
    state = seed * 0x9E3779B97F4A7C15ULL + 1; /* never zero */
    long long inside = 0;
    for (long long i = 0; i < samples; i++) {
        double x = next_unit(), y = next_unit();
        if (x * x + y * y <= 1.0) inside++;
    }
    double pi = 4.0 * (double)inside / (double)samples;
    printf("samples=%lld inside=%lld pi=%.10f\n", samples, inside, pi);
    FILE *f = fopen("/output/pi.txt", "w");
    if (f) {
        fprintf(f, "%.17g\n", pi);
        fclose(f);
    }
    return 0;
}
