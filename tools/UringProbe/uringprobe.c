// uringprobe: does an io_uring fdatasync complete as soon as the disk is done, and do two logs'
// flushes submitted together cost one? (issue 13, session 23). Raw syscalls, no liburing.
// Build: gcc -O2 -o uringprobe uringprobe.c   Run: ./uringprobe DIR N [BYTES]
// Every mode appends BYTES (default 4096) per op at the next offset of 64 MiB preallocated files and
// makes it durable; prints p25/p50/p75/p90 in microseconds of the time until the op(s) are durable.
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/io_uring.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define FILE_BYTES (64L << 20)
static int ring_fd; static unsigned *sq_tail, *sq_mask, *sq_array, *cq_head, *cq_tail, *cq_mask;
static struct io_uring_sqe *sqes; static struct io_uring_cqe *cqes; static unsigned sq_local_tail;

static double now_us(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec * 1e6 + t.tv_nsec / 1e3; }
static int cmp(const void *a, const void *b) { double x = *(double *)a, y = *(double *)b; return x < y ? -1 : x > y; }
static void report(const char *name, double *v, int n) {
  qsort(v, n, sizeof *v, cmp);
  printf("%-44s p25 %7.0f  p50 %7.0f  p75 %7.0f  p90 %7.0f us\n", name, v[n / 4], v[n / 2], v[3 * n / 4], v[9 * n / 10]);
  fflush(stdout);
}

static void setup(void) {
  struct io_uring_params p; memset(&p, 0, sizeof p);
  ring_fd = syscall(__NR_io_uring_setup, 8, &p);
  if (ring_fd < 0) { perror("io_uring_setup"); exit(1); }
  size_t sq_len = p.sq_off.array + p.sq_entries * sizeof(unsigned);
  size_t cq_len = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
  char *sq = mmap(0, sq_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring_fd, IORING_OFF_SQ_RING);
  char *cq = mmap(0, cq_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring_fd, IORING_OFF_CQ_RING);
  sqes = mmap(0, p.sq_entries * sizeof(struct io_uring_sqe), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring_fd, IORING_OFF_SQES);
  if (sq == MAP_FAILED || cq == MAP_FAILED || sqes == MAP_FAILED) { perror("mmap"); exit(1); }
  sq_tail = (unsigned *)(sq + p.sq_off.tail); sq_mask = (unsigned *)(sq + p.sq_off.ring_mask); sq_array = (unsigned *)(sq + p.sq_off.array);
  cq_head = (unsigned *)(cq + p.cq_off.head); cq_tail = (unsigned *)(cq + p.cq_off.tail); cq_mask = (unsigned *)(cq + p.cq_off.ring_mask);
  cqes = (struct io_uring_cqe *)(cq + p.cq_off.cqes); sq_local_tail = *sq_tail;
  printf("ring: sq %u cq %u features 0x%x\n", p.sq_entries, p.cq_entries, p.features);
}

static void prep(int op, int fd, const void *buf, unsigned len, long off, unsigned fsync_flags, unsigned char flags) {
  unsigned i = sq_local_tail & *sq_mask; struct io_uring_sqe *s = &sqes[i]; memset(s, 0, sizeof *s);
  s->opcode = op; s->fd = fd; s->addr = (uint64_t)(uintptr_t)buf; s->len = len; s->off = off; s->fsync_flags = fsync_flags; s->flags = flags;
  sq_array[i] = i; sq_local_tail++;
}
static void submit(unsigned n, unsigned wait) {
  atomic_store_explicit((_Atomic unsigned *)sq_tail, sq_local_tail, memory_order_release);
  if (syscall(__NR_io_uring_enter, ring_fd, n, wait, wait ? IORING_ENTER_GETEVENTS : 0, 0, 0) < 0) { perror("enter"); exit(1); }
}
static int reap(int want, int poll) { // returns completions seen; exits on error
  int got = 0;
  while (got < want) {
    unsigned h = *cq_head, t = atomic_load_explicit((_Atomic unsigned *)cq_tail, memory_order_acquire);
    while (h != t) { struct io_uring_cqe *c = &cqes[h & *cq_mask]; if (c->res < 0) { fprintf(stderr, "cqe res %d\n", c->res); exit(1); } h++; got++; }
    atomic_store_explicit((_Atomic unsigned *)cq_head, h, memory_order_release);
    if (got < want && !poll) syscall(__NR_io_uring_enter, ring_fd, 0, want - got, IORING_ENTER_GETEVENTS, 0, 0);
  }
  return got;
}

int main(int argc, char **argv) {
  if (argc < 3) { fprintf(stderr, "usage: %s DIR N [BYTES]\n", argv[0]); return 2; }
  int n = atoi(argv[2]); unsigned bytes = argc > 3 ? atoi(argv[3]) : 4096;
  int fds[3]; char path[4096];
  for (int f = 0; f < 3; f++) {
    snprintf(path, sizeof path, "%s/uringprobe.%d", argv[1], f);
    fds[f] = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (fds[f] < 0 || posix_fallocate(fds[f], 0, FILE_BYTES) != 0 || fsync(fds[f]) != 0) { perror(path); return 1; }
  }
  setup();
  char *buf = aligned_alloc(4096, 4096 * 4); memset(buf, 'x', 4096 * 4);
  double *v = malloc(sizeof(double) * n); long off = 0;
#define NEXT() (off = (off + bytes) % (FILE_BYTES - bytes))
  for (int pass = 0; pass < 2; pass++) {
    for (int i = 0; i < n; i++) { NEXT(); double t = now_us(); if (pwrite(fds[0], buf, bytes, off) != bytes || fdatasync(fds[0])) return 1; v[i] = now_us() - t; }
    report("sync pwrite + fdatasync, one log", v, n);
    for (int i = 0; i < n; i++) { NEXT(); double t = now_us(); for (int f = 0; f < 2; f++) if (pwrite(fds[f], buf, bytes, off) != bytes || fdatasync(fds[f])) return 1; v[i] = now_us() - t; }
    report("sync, two logs one after the other", v, n);
    for (int i = 0; i < n; i++) { NEXT(); double t = now_us(); if (pwrite(fds[0], buf, bytes, off) != bytes) return 1; prep(IORING_OP_FSYNC, fds[0], 0, 0, 0, IORING_FSYNC_DATASYNC, 0); submit(1, 1); reap(1, 0); v[i] = now_us() - t; }
    report("uring: pwrite, FSYNC submit+wait, one log", v, n);
    for (int i = 0; i < n; i++) { NEXT(); double t = now_us(); if (pwrite(fds[0], buf, bytes, off) != bytes) return 1; prep(IORING_OP_FSYNC, fds[0], 0, 0, 0, IORING_FSYNC_DATASYNC, 0); submit(1, 0); reap(1, 0); v[i] = now_us() - t; }
    report("uring: pwrite, FSYNC submit, then wait", v, n);
    for (int i = 0; i < n; i++) { NEXT(); double t = now_us(); if (pwrite(fds[0], buf, bytes, off) != bytes) return 1; prep(IORING_OP_FSYNC, fds[0], 0, 0, 0, IORING_FSYNC_DATASYNC, 0); submit(1, 0); reap(1, 1); v[i] = now_us() - t; }
    report("uring: pwrite, FSYNC submit, poll CQ", v, n);
    for (int i = 0; i < n; i++) { NEXT(); double t = now_us(); prep(IORING_OP_WRITE, fds[0], buf, bytes, off, 0, IOSQE_IO_LINK); prep(IORING_OP_FSYNC, fds[0], 0, 0, 0, IORING_FSYNC_DATASYNC, 0); submit(2, 2); reap(2, 0); v[i] = now_us() - t; }
    report("uring: WRITE linked to FSYNC, one log", v, n);
    for (int i = 0; i < n; i++) { NEXT(); double t = now_us(); for (int f = 0; f < 2; f++) { if (pwrite(fds[f], buf, bytes, off) != bytes) return 1; prep(IORING_OP_FSYNC, fds[f], 0, 0, 0, IORING_FSYNC_DATASYNC, 0); } submit(2, 2); reap(2, 0); v[i] = now_us() - t; }
    report("uring: two logs' FSYNC submitted together", v, n);
    for (int i = 0; i < n; i++) { NEXT(); double t = now_us(); for (int f = 0; f < 2; f++) { if (pwrite(fds[f], buf, bytes, off) != bytes) return 1; prep(IORING_OP_FSYNC, fds[f], 0, 0, 0, IORING_FSYNC_DATASYNC, 0); } submit(2, 0); reap(2, 1); v[i] = now_us() - t; }
    report("uring: two logs' FSYNC together, poll CQ", v, n);
    for (int i = 0; i < n; i++) { NEXT(); double t = now_us(); if (pwrite(fds[0], buf, bytes, off) != bytes) return 1; prep(IORING_OP_FSYNC, fds[0], 0, 0, 0, IORING_FSYNC_DATASYNC, 0); submit(1, 0);
      if (pwrite(fds[1], buf, bytes, off) != bytes || fdatasync(fds[1])) return 1;
      reap(1, 0); v[i] = now_us() - t; }
    report("one log via uring, the other sync meanwhile", v, n);
    for (int i = 0; i < n; i++) { NEXT(); double t = now_us(); for (int f = 0; f < 3; f++) { if (pwrite(fds[f], buf, bytes, off) != bytes) return 1; prep(IORING_OP_FSYNC, fds[f], 0, 0, 0, IORING_FSYNC_DATASYNC, 0); } submit(3, 3); reap(3, 0); v[i] = now_us() - t; }
    report("uring: three logs' FSYNC together (all three)", v, n);
  }
  for (int f = 0; f < 3; f++) { close(fds[f]); snprintf(path, sizeof path, "%s/uringprobe.%d", argv[1], f); unlink(path); }
  close(ring_fd);
  return 0;
}
