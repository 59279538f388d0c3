/* MPI hello world: every rank reports its host; rank 0 checks that all ranks answered. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  int rank = 0, size = 0, len = 0;
  char host[MPI_MAX_PROCESSOR_NAME];
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  MPI_Get_processor_name(host, &len);
  printf("hello from rank %d of %d on %s\n", rank, size, host);
  int one = 1, total = 0;
  MPI_Reduce(&one, &total, 1, MPI_INT, MPI_SUM, 0, MPI_COMM_WORLD);
  if (rank == 0) {
    const char *metrics = getenv("SPAWN_METRICS_FILE");
    FILE *f = metrics ? fopen(metrics, "a") : NULL;
    if (f) {
      fprintf(f, "{\"ranks\": %d}\n", total);
      fclose(f);
    }
    if (total != size) {
      fprintf(stderr, "only %d of %d ranks answered\n", total, size);
      MPI_Abort(MPI_COMM_WORLD, 1);
    }
  }
  MPI_Finalize();
  return 0;
}
