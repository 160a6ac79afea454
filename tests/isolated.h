/* SPDX-License-Identifier: MIT */
/*
 * A test body in namespaces of its own (tests/isolated.c), for the tests of
 * name resolution: a resolver and addresses that the test controls, with
 * nothing leaving the machine.
 *
 * run_isolated runs CHILD `name` (harness.h) in a child process inside new
 * mount and network namespaces (tests run as root; without the privilege
 * the test is skipped): the child brings the new namespace's loopback up,
 * bind-mounts over /etc/resolv.conf a file naming 127.0.0.1 with a 30 s
 * timeout and over /etc/nsswitch.conf "hosts: files dns"; then it execs
 * this binary's CHILD body. run_isolated_with_hosts also bind-mounts `hosts`
 * over /etc/hosts (and "multi on" over /etc/host.conf, so that a name on
 * several lines has every address). The whole of 127.0.0.0/8 is the new
 * loopback's, so a body may bind 127.0.0.2 and its neighbours too.
 *
 * Returns the child's output (freed by the caller), having printed it;
 * skips the test if the namespaces are not permitted (or there is no
 * /etc/hosts to mount `hosts` over); fails it if the child fails.
 */
#ifndef CCTX_TEST_ISOLATED_H
#define CCTX_TEST_ISOLATED_H

char *run_isolated(const char *name);
char *run_isolated_with_hosts(const char *name, const char *hosts);

#endif
