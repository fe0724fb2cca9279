/* Dev-time check (devkit/seccomp.ts builds it): seccomp-run <allow-list file> <program> [args...]
   runs the program under a seccomp allow-list (one syscall name a line), every other call failing
   with EPERM, as systemd's SystemCallFilter= with SystemCallErrorNumber=EPERM would. The four
   libseccomp calls are declared here so no -dev package is needed, only libseccomp.so.2. */
#include <stdio.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>
typedef void *scmp_filter_ctx;
extern scmp_filter_ctx seccomp_init(uint32_t def_action);
extern int seccomp_rule_add(scmp_filter_ctx ctx, uint32_t action, int syscall, unsigned int arg_cnt, ...);
extern int seccomp_syscall_resolve_name(const char *name);
extern int seccomp_load(scmp_filter_ctx ctx);
#define ACT_ALLOW 0x7fff0000U
#define ACT_ERRNO(x) (0x00050000U | ((x) & 0x0000ffffU))
int main(int argc, char **argv) {
  if (argc < 3) { fprintf(stderr, "usage: seccomp-run allow-list program [args...]\n"); return 2; }
  FILE *f = fopen(argv[1], "r"); char line[128]; int n = 0, unknown = 0;
  if (!f) { perror(argv[1]); return 2; }
  scmp_filter_ctx ctx = seccomp_init(ACT_ERRNO(1)); /* 1 = EPERM */
  if (!ctx) { fprintf(stderr, "seccomp_init failed\n"); return 1; }
  while (fgets(line, sizeof line, f)) {
    line[strcspn(line, "\n")] = 0; if (!*line) continue;
    int nr = seccomp_syscall_resolve_name(line);
    if (nr < 0) { unknown++; continue; } /* other architectures' calls (e.g. arm_fadvise64_64) */
    if (seccomp_rule_add(ctx, ACT_ALLOW, nr, 0) == 0) n++;
  }
  fprintf(stderr, "seccomp: %d syscalls allowed (%d names not on this arch), the rest EPERM\n", n, unknown);
  int rc = seccomp_load(ctx);
  if (rc != 0) { fprintf(stderr, "seccomp_load failed: %s\n", strerror(-rc)); return 1; }
  execv(argv[2], argv + 2); perror("execv"); return 127;
}
