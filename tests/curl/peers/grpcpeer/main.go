// SPDX-License-Identifier: MIT
// grpcpeer: a grpc-go server for the cctx-curl tests, without generated
// code: a hand-written ServiceDesc and a codec that passes message bytes
// through. It listens on 127.0.0.1 (h2c), prints "port N", then one line
// per event on stdout:
//
//	req METHOD deadline=MS grpc-timeout=V traceparent=V
//	     (MS: ctx.Deadline() - now at the handler's start, in ms with
//	     three decimals, or "none")
//	canceled METHOD ERR NS   (the handler's context ended; NS is CLOCK_MONOTONIC)
//
// svc/Method echoes its message, svc/Hang waits for its context to end,
// svc/Fail answers NOT_FOUND "no such thing".
package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

var mu sync.Mutex

func report(format string, a ...interface{}) {
	line := fmt.Sprintf(format, a...)
	mu.Lock()
	os.Stdout.WriteString(line + "\n")
	mu.Unlock()
}

func monotonic() int64 {
	var ts syscall.Timespec
	syscall.Syscall(syscall.SYS_CLOCK_GETTIME, 1, uintptr(unsafe.Pointer(&ts)), 0)
	return ts.Sec*1e9 + ts.Nsec
}

// rawCodec hands the message bytes over as they are.
type rawCodec struct{}

func (rawCodec) Marshal(v interface{}) ([]byte, error) { return *(v.(*[]byte)), nil }
func (rawCodec) Unmarshal(data []byte, v interface{}) error {
	*(v.(*[]byte)) = append([]byte(nil), data...)
	return nil
}
func (rawCodec) String() string { return "raw" }

func started(ctx context.Context, method string) {
	dl := "none"
	if d, ok := ctx.Deadline(); ok {
		dl = fmt.Sprintf("%.3f", float64(time.Until(d).Nanoseconds())/1e6)
	}
	md, _ := metadata.FromIncomingContext(ctx)
	first := func(k string) string {
		if v := md.Get(k); len(v) > 0 {
			return v[0]
		}
		return ""
	}
	report("req %s deadline=%s grpc-timeout=%s traceparent=%s", method, dl,
		first("grpc-timeout"), first("traceparent"))
}

func handler(method string) func(interface{}, context.Context, func(interface{}) error,
	grpc.UnaryServerInterceptor) (interface{}, error) {
	return func(_ interface{}, ctx context.Context, dec func(interface{}) error,
		_ grpc.UnaryServerInterceptor) (interface{}, error) {
		var in []byte
		if err := dec(&in); err != nil {
			return nil, err
		}
		started(ctx, method)
		switch method {
		case "Hang":
			<-ctx.Done()
			report("canceled %s %v %d", method, ctx.Err(), monotonic())
			return nil, ctx.Err()
		case "Fail":
			return nil, status.Error(codes.NotFound, "no such thing")
		}
		return &in, nil
	}
}

func main() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	desc := grpc.ServiceDesc{
		ServiceName: "svc",
		HandlerType: (*interface{})(nil),
		Methods: []grpc.MethodDesc{
			{MethodName: "Method", Handler: handler("Method")},
			{MethodName: "Hang", Handler: handler("Hang")},
			{MethodName: "Fail", Handler: handler("Fail")},
		},
	}
	s := grpc.NewServer(grpc.CustomCodec(rawCodec{}))
	s.RegisterService(&desc, struct{}{})
	report("port %d", ln.Addr().(*net.TCPAddr).Port)
	go func() {
		b := make([]byte, 1)
		os.Stdin.Read(b)
		os.Exit(0)
	}()
	s.Serve(ln)
}
