// Build: gcc -O2 -pthread -o quorumprobe quorumprobe.c. Run: quorumprobe DIR N F|W BYTES DELAY_US [f|d [LOGS]] (64 MiB files).
// s29: MODE f = pwrite + fdatasync (as s28), d = one pwritev2(..., RWF_DSYNC) (no separate flush); LOGS 3 (default) or 1
// (the leader alone: its round is its own flush).
// s28 quorum probe: three logs (leader + two followers), each write+fdatasync of BS bytes per round into its own
// file (fresh fallocated F, or written W); followers start D us after the leader; a round's time is until the
// leader's and the first follower's flush are both done (what a commit at 1 in flight waits for).
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <semaphore.h>
#include <sys/uio.h>
#ifndef RWF_DSYNC
#define RWF_DSYNC 0x00000002
#endif
static sem_t gos[3], fins; static double lstart;
static double now(){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec*1e6+t.tv_nsec/1e3;}
static int cmp(const void*a,const void*b){double x=*(double*)a,y=*(double*)b;return x<y?-1:x>y;}
#define FILEB (64L<<20)
static int fds[3]; static long offs[3]; static int bs; static double delay; static char mode='f'; static int logs=3;
static atomic_int go[3]; static double start, done[3]; static atomic_int fin;
static char buf[3][65536];
static void* worker(void*a){int i=(int)(long)a; int round=0;
  for(;;){ sem_wait(&gos[i]); round++;
    if(i==0){lstart=now();atomic_store(&fin,1);} else { while(atomic_load(&fin)==0); double target=lstart+delay; while(now()<target); }
    if(mode=='d'){struct iovec v={buf[i],(size_t)bs}; if(pwritev2(fds[i],&v,1,offs[i],RWF_DSYNC)!=bs){perror("pwritev2");exit(1);}}
    else {pwrite(fds[i],buf[i],bs,offs[i]); fdatasync(fds[i]);}
    offs[i]+=bs; done[i]=now(); sem_post(&fins);} return 0;}
static int mk(const char*dir,int i,char st){char p[256];snprintf(p,256,"%s/q%d_%c.bin",dir,i,st);unlink(p);
  int fd=open(p,O_RDWR|O_CREAT|O_TRUNC,0644); posix_fallocate(fd,0,FILEB);
  if(st=='W'){static char z[1<<20];memset(z,0x5a,sizeof z);for(long o=0;o<FILEB;o+=sizeof z)pwrite(fd,z,sizeof z,o);}
  fsync(fd);return fd;}
int main(int argc,char**argv){const char*dir=argv[1];int n=atoi(argv[2]);char st=argv[3][0];bs=atoi(argv[4]);delay=atof(argv[5]);
  if(argc>6){mode=argv[6][0];}
  if(argc>7){logs=atoi(argv[7]);}
  for(int i=0;i<3;i++){fds[i]=mk(dir,i,st);memset(buf[i],0x33+i,sizeof buf[i]);}
  for(int i=0;i<3;i++)sem_init(&gos[i],0,0);
  sem_init(&fins,0,0);
  pthread_t t[3];for(long i=0;i<logs;i++)pthread_create(&t[i],0,worker,(void*)i);
  double*s=malloc(n*sizeof(double)),*l=malloc(n*sizeof(double));usleep(100000);
    for(int r=0;r<n;r++){atomic_store(&fin,0);for(int i=0;i<logs;i++)sem_post(&gos[i]);
    for(int i=0;i<logs;i++)sem_wait(&fins);start=lstart;double f=logs==1?done[0]:done[1]<done[2]?done[1]:done[2];double q=done[0]>f?done[0]:f;s[r]=q-start;l[r]=done[0]-start;usleep(300);}
  qsort(s,n,sizeof(double),cmp);qsort(l,n,sizeof(double),cmp);
  printf("%c %s logs %d bs %d delay %.0f: quorum p25 %.0f p50 %.0f p75 %.0f p90 %.0f | leader alone-in-round p50 %.0f\n",st,mode=='d'?"RWF_DSYNC":"fdatasync",logs,bs,delay,s[n/4],s[n/2],s[3*n/4],s[9*n/10],l[n/2]);
  for(int i=0;i<3;i++){char p[256];snprintf(p,256,"%s/q%d_%c.bin",dir,i,st);unlink(p);}
  return 0;}
