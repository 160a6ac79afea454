# SPDX-License-Identifier: MIT
# What the C library and kernel headers offer, for the calls that are not in
# every POSIX system or every libc. Each result is a CCTX_HAVE_* macro of the
# generated private header cctx_config.h (from src/config.h.in); the sources
# pick a portable fallback where one is 0 (docs/portability.md lists them and
# what each costs).
#
# CCTX_PORTABLE=ON uses the fallbacks on Linux too, as if none of this were
# there: no futex, no eventfd, no preadv2, no clock-selecting waits, no
# gettid, no thread names. It is for testing the code that other systems run;
# nobody should ship it on Linux.
include(CheckCSourceCompiles)
include(CheckIncludeFile)
include(CheckSymbolExists)

option(CCTX_PORTABLE "Use only the portable (POSIX) paths, also on Linux: for testing them" OFF)

set(CMAKE_REQUIRED_DEFINITIONS -D_GNU_SOURCE)
set(CMAKE_REQUIRED_LIBRARIES ${CMAKE_THREAD_LIBS_INIT})
set(CMAKE_REQUIRED_QUIET ON)

# Linux's futex(2) constants; musl-gcc on Debian does not see the kernel's
# headers, and os.c then spells out the (stable) numbers itself.
check_include_file(linux/futex.h CCTX_HAVE_LINUX_FUTEX_H)
check_include_file(sys/prctl.h CCTX_HAVE_SYS_PRCTL_H)
check_symbol_exists(eventfd sys/eventfd.h CCTX_HAVE_EVENTFD)
check_symbol_exists(SYS_futex sys/syscall.h CCTX_HAVE_SYS_FUTEX)
check_symbol_exists(pipe2 unistd.h CCTX_HAVE_PIPE2)
check_symbol_exists(ppoll poll.h CCTX_HAVE_PPOLL)
check_symbol_exists(gettid unistd.h CCTX_HAVE_GETTID)
check_symbol_exists(SYS_gettid sys/syscall.h CCTX_HAVE_SYS_GETTID)
# glibc 2.26 (musl: not in 1.2.3); RWF_NOWAIT comes with the kernel headers.
check_c_source_compiles("
#include <sys/uio.h>
int main(void)
{
    char c;
    struct iovec v = {&c, 1};
    return (int)preadv2(0, &v, 1, -1, RWF_NOWAIT) + (int)pwritev2(1, &v, 1, -1, RWF_NOWAIT);
}" CCTX_HAVE_PREADV2)
# musl 1.2.3 has neither the wrappers nor RWF_NOWAIT, but the system calls
# are there (Linux 4.6; RWF_NOWAIT 4.14, older kernels refuse it).
check_symbol_exists(SYS_preadv2 sys/syscall.h CCTX_HAVE_SYS_PREADV2)
# glibc 2.30 and 2.31; not in musl 1.2.3.
check_symbol_exists(pthread_mutex_clocklock pthread.h CCTX_HAVE_PTHREAD_MUTEX_CLOCKLOCK)
check_symbol_exists(sem_clockwait semaphore.h CCTX_HAVE_SEM_CLOCKWAIT)
check_symbol_exists(pthread_clockjoin_np pthread.h CCTX_HAVE_PTHREAD_CLOCKJOIN_NP)
check_symbol_exists(pthread_cond_clockwait pthread.h CCTX_HAVE_PTHREAD_COND_CLOCKWAIT)
# glibc and musl both; not POSIX (no macOS).
check_symbol_exists(pthread_timedjoin_np pthread.h CCTX_HAVE_PTHREAD_TIMEDJOIN_NP)
check_symbol_exists(pthread_tryjoin_np pthread.h CCTX_HAVE_PTHREAD_TRYJOIN_NP)
# The two-argument setter and the three-argument getter of glibc, musl and
# FreeBSD (macOS's setter takes only a name).
check_c_source_compiles("
#include <pthread.h>
int main(void)
{
    char name[16];
    return pthread_setname_np(pthread_self(), \"x\") + pthread_getname_np(pthread_self(), name, sizeof name);
}" CCTX_HAVE_PTHREAD_NAMES)
# glibc 2.34.
check_symbol_exists(posix_spawn_file_actions_addclosefrom_np spawn.h CCTX_HAVE_ADDCLOSEFROM)
# glibc 2.17 and musl; elsewhere the kernel's AT_SECURE where getauxval
# reads it (Linux), else the process's ids are compared.
check_symbol_exists(secure_getenv stdlib.h CCTX_HAVE_SECURE_GETENV)
check_symbol_exists(getauxval sys/auxv.h CCTX_HAVE_GETAUXVAL)

unset(CMAKE_REQUIRED_DEFINITIONS)
unset(CMAKE_REQUIRED_LIBRARIES)
unset(CMAKE_REQUIRED_QUIET)

# #cmakedefine01 wants a defined variable for every answer.
foreach(_cctx_feature LINUX_FUTEX_H SYS_PRCTL_H EVENTFD SYS_FUTEX PIPE2 PPOLL GETTID SYS_GETTID
    PREADV2 SYS_PREADV2 PTHREAD_MUTEX_CLOCKLOCK SEM_CLOCKWAIT PTHREAD_CLOCKJOIN_NP
    PTHREAD_COND_CLOCKWAIT PTHREAD_TIMEDJOIN_NP PTHREAD_TRYJOIN_NP PTHREAD_NAMES ADDCLOSEFROM)
  if(NOT CCTX_HAVE_${_cctx_feature})
    set(CCTX_HAVE_${_cctx_feature} 0)
  endif()
endforeach()

configure_file(${CMAKE_CURRENT_LIST_DIR}/../src/config.h.in
  ${PROJECT_BINARY_DIR}/generated/cctx_config.h)
# Every target of this directory and below (the fuzz targets compile the
# sources again) finds it; it is private, never installed.
include_directories(${PROJECT_BINARY_DIR}/generated)
