// SPDX-License-Identifier: MIT
// httppeer: a Go net/http server (standard library only) for the cctx-curl
// tests and benchmarks. It listens on 127.0.0.1 (port from the first
// argument, 0 for any), prints "port N", and then one line per event on
// stdout, written the moment it happens (os.Stdout is unbuffered):
//
//	req PATH\tgrpc-timeout=V\ttraceparent=V\ttracestate=V\tx-test=V\tremote=HOST:PORT
//	canceled PATH NS   (the request's context ended; NS is CLOCK_MONOTONIC)
//
// /hang waits for the request's context to end. /echo answers "ok PATH" at
// once. /slow?ms=N answers after N milliseconds (or reports canceled).
// /quiet answers "ok" and reports nothing (the benchmark's small GET).
package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"
	"unsafe"
)

var mu sync.Mutex

func report(format string, a ...interface{}) {
	line := fmt.Sprintf(format, a...)
	mu.Lock()
	os.Stdout.WriteString(line + "\n")
	mu.Unlock()
}

// monotonic reads CLOCK_MONOTONIC as C's clock_gettime does, so the C side
// can compare it with its own (Go's time.Now carries a monotonic reading
// with another origin).
func monotonic() int64 {
	var ts syscall.Timespec
	syscall.Syscall(syscall.SYS_CLOCK_GETTIME, 1, uintptr(unsafe.Pointer(&ts)), 0)
	return ts.Sec*1e9 + ts.Nsec
}

func headers(r *http.Request) string {
	// remote tells the connections apart: a reused one keeps its port.
	return fmt.Sprintf("grpc-timeout=%s\ttraceparent=%s\ttracestate=%s\tx-test=%s\tremote=%s",
		r.Header.Get("grpc-timeout"), r.Header.Get("traceparent"),
		r.Header.Get("tracestate"), r.Header.Get("x-test"), r.RemoteAddr)
}

func main() {
	port := "0"
	if len(os.Args) > 1 {
		port = os.Args[1]
	}
	ln, err := net.Listen("tcp", "127.0.0.1:"+port)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/hang", func(w http.ResponseWriter, r *http.Request) {
		report("req %s\t%s", r.URL.Path, headers(r))
		<-r.Context().Done()
		report("canceled %s %d", r.URL.Path, monotonic())
	})
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		report("req %s\t%s", r.URL.RequestURI(), headers(r))
		fmt.Fprintf(w, "ok %s", r.URL.RequestURI())
	})
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		report("req %s\t%s", r.URL.RequestURI(), headers(r))
		ms, _ := strconv.Atoi(r.URL.Query().Get("ms"))
		select {
		case <-time.After(time.Duration(ms) * time.Millisecond):
			fmt.Fprintf(w, "ok %s", r.URL.RequestURI())
		case <-r.Context().Done():
			report("canceled %s %d", r.URL.Path, monotonic())
		}
	})
	mux.HandleFunc("/quiet", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok"))
	})
	report("port %d", ln.Addr().(*net.TCPAddr).Port)
	// The test ends the peer by closing its stdin.
	go func() {
		b := make([]byte, 1)
		os.Stdin.Read(b)
		os.Exit(0)
	}()
	http.Serve(ln, mux)
}
