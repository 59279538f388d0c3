/*
 * MPI_Allreduce bandwidth over message sizes, as nccl-tests reports it: algbw = bytes / time, and
 * busbw = algbw * 2 (n - 1) / n, the per-link traffic of a ring allreduce (each byte counted once).
 * Rank 0 prints a table, writes one JSON line per size to SPAWN_METRICS_FILE and the table to
 * SPAWN_OUTPUT_DIR/allreduce.json.
 */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  int rank = 0, size = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  long max_bytes = argc > 1 ? atol(argv[1]) : 64L << 20;
  int iters = argc > 2 ? atoi(argv[2]) : 20;
  float *send = malloc(max_bytes), *recv = malloc(max_bytes);
  if (!send || !recv) MPI_Abort(MPI_COMM_WORLD, 2);
  for (long i = 0; i < max_bytes / (long)sizeof(float); i++) send[i] = 1.0f;

  FILE *metrics = NULL, *table = NULL;
  if (rank == 0) {
    const char *m = getenv("SPAWN_METRICS_FILE"), *o = getenv("SPAWN_OUTPUT_DIR");
    metrics = m ? fopen(m, "a") : NULL;
    char path[4096];
    snprintf(path, sizeof path, "%s/allreduce.json", o ? o : ".");
    table = fopen(path, "w");
    printf("%12s %12s %12s %12s\n", "bytes", "time_us", "algbw_GBps", "busbw_GBps");
    if (table) fprintf(table, "[");
  }
  int first = 1;
  for (long bytes = 1024; bytes <= max_bytes; bytes *= 4) {
    int count = (int)(bytes / sizeof(float));
    MPI_Allreduce(send, recv, count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD); /* warm-up */
    MPI_Barrier(MPI_COMM_WORLD);
    double t0 = MPI_Wtime();
    for (int i = 0; i < iters; i++) MPI_Allreduce(send, recv, count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    double local = (MPI_Wtime() - t0) / iters, elapsed = 0;
    MPI_Reduce(&local, &elapsed, 1, MPI_DOUBLE, MPI_MAX, 0, MPI_COMM_WORLD);
    if (recv[0] != (float)size) {
      fprintf(stderr, "rank %d: wrong sum %f, expected %d\n", rank, recv[0], size);
      MPI_Abort(MPI_COMM_WORLD, 1);
    }
    if (rank == 0) {
      double algbw = bytes / elapsed / 1e9, busbw = algbw * 2.0 * (size - 1) / size;
      printf("%12ld %12.1f %12.3f %12.3f\n", bytes, elapsed * 1e6, algbw, busbw);
      const char *fmt = "{\"bytes\": %ld, \"time_us\": %.1f, \"algbw_GBps\": %.4f, \"busbw_GBps\": %.4f}";
      if (metrics) {
        fprintf(metrics, fmt, bytes, elapsed * 1e6, algbw, busbw);
        fprintf(metrics, "\n");
      }
      if (table) {
        fprintf(table, "%s", first ? "\n  " : ",\n  ");
        fprintf(table, fmt, bytes, elapsed * 1e6, algbw, busbw);
      }
      first = 0;
    }
  }
  if (rank == 0) {
    if (table) fprintf(table, "\n]\n"), fclose(table);
    if (metrics) fclose(metrics);
  }
  free(send);
  free(recv);
  MPI_Finalize();
  return 0;
}
