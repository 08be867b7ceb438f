// Build: gcc -O2 -o blockstateprobe blockstateprobe.c. Run: blockstateprobe DIR N [REPEATS] [STATES], STATES from F (fresh
// posix_fallocate), W (written with data), N (written with zeros), Z (written, then FALLOC_FL_ZERO_RANGE|KEEP_SIZE + fsync),
// P (fresh, each write that passes the written end carries zeros to 64 KiB past its block). 64 MiB file per case.
// s28 disk probe: write + flush latency by block state (fresh fallocated / written / ZERO_RANGE'd),
// size (1 KiB / 4 KiB), pwrite + fdatasync (a first version also timed O_DSYNC pwrite: docs/benchmarks.md, session 28).
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <linux/falloc.h>
static double now(){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec*1e6+t.tv_nsec/1e3;}
static int cmp(const void*a,const void*b){double x=*(double*)a,y=*(double*)b;return x<y?-1:x>y;}
#define FILEB (64L<<20)
static char buf[1<<20];
static int prep(const char*dir,char state,int dsync){
  char p[512];snprintf(p,sizeof p,"%s/f_%c.bin",dir,state);unlink(p);
  int fd=open(p,O_RDWR|O_CREAT|O_TRUNC,0644);if(fd<0){perror("open");exit(1);}
  if(state=='F'){ if(posix_fallocate(fd,0,FILEB)){perror("falloc");exit(1);} }
  else if(state=='P'){ if(posix_fallocate(fd,0,FILEB)){perror("falloc");exit(1);} }
  else { memset(buf,state=='N'?0:0x5a,sizeof buf); for(long o=0;o<FILEB;o+=sizeof buf) pwrite(fd,buf,sizeof buf,o);
         if(state=='Z'){ if(fallocate(fd,FALLOC_FL_ZERO_RANGE|FALLOC_FL_KEEP_SIZE,0,FILEB)){perror("zr");exit(1);} } }
  fsync(fd);
  int dfd=open(p,O_RDWR|O_DIRECTORY*0|(dsync?O_DSYNC:0));close(fd);
  int d=open(dir,O_RDONLY);fsync(d);close(d);
  return dfd;
}
int main(int argc,char**argv){
  const char*dir=argv[1];int n=atoi(argv[2]);
  const char*states=argc>4?argv[4]:"FWNZP";int ns=strlen(states);int sizes[]={1024,4096};
  printf("state size method p25 p50 p75 p90 (us), n=%d\n",n);
  for(int rep=0;rep<(argc>3?atoi(argv[3]):1);rep++)
  for(int si=0;si<ns;si++)for(int zi=0;zi<2;zi++)for(int m=0;m<1;m++){
    int fd=prep(dir,states[si],m);int bs=sizes[zi];
    double*s=malloc(n*sizeof(double));memset(buf,0x33,bs);long off=0;
    usleep(200000);
    long hz=0;static char z[65536+8192];
    for(int i=0;i<n;i++){double t=now();
      if(states[si]=='P'&&off+bs>hz){long end=((off+bs+4095)&~4095L)+65536;memcpy(z,buf,bs);memset(z+bs,0,end-off-bs);pwrite(fd,z,end-off,off);hz=end;}
      else pwrite(fd,buf,bs,off);
      if(!m)fdatasync(fd);
      s[i]=now()-t;off+=bs;}
    qsort(s,n,sizeof(double),cmp);
    printf("%c %d %s %.0f %.0f %.0f %.0f mean %.0f\n",states[si],bs,m?"O_DSYNC":"fdatasync",s[n/4],s[n/2],s[3*n/4],s[9*n/10],({double a=0;for(int i=0;i<n;i++)a+=s[i];a/n;}));fflush(stdout);
    close(fd);free(s);
  }
  return 0;
}
