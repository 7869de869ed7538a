/* Dense matrix multiply C = A * B (N x N doubles), deterministic contents.
 * usage: matmul [N=300]
 * Prints a checksum and writes it to /output/checksum.txt when /output exists. */
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 300;
    if (n <= 0 || n > 4096) {
        fprintf(stderr, "N must be in 1..4096\n");
        return 2;
    }
    double *a = malloc(sizeof(double) * n * n);
    double *b = malloc(sizeof(double) * n * n);
    double *c = calloc((size_t)n * n, sizeof(double));
    if (!a || !b || !c) {
        fprintf(stderr, "out of memory for N=%d\n", n);
        return 3;
    }
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            a[i * n + j] = (double)((i * 31 + j * 17) % 97) / 97.0;
            b[i * n + j] = (double)((i * 13 + j * 7) % 89) / 89.0;
        }
    for (int i = 0; i < n; i++)      /* i-k-j order: streams through B and C rows */
        for (int k = 0; k < n; k++) {
            double aik = a[i * n + k];
            for (int j = 0; j < n; j++) c[i * n + j] += aik * b[k * n + j];
        }
    double sum = 0.0;
    for (int i = 0; i < n * n; i++) sum += c[i] * (double)((i % 7) + 1);
    printf("n=%d checksum=%.6f\n", n, sum);
    FILE *f = fopen("/output/checksum.txt", "w");
    if (f) {
        fprintf(f, "%.17g\n", sum);
        fclose(f);
    }
    free(a);
    free(b);
    free(c);
    return 0;
}
