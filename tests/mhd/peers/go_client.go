// SPDX-License-Identifier: MIT
// A peer nobody here wrote the HTTP stack of: Go's net/http client (standard
// library only).
//
//	go_client URL TIMEOUT   e.g. go_client http://127.0.0.1:8080/slow 200ms
//
// sends one request with a context whose timeout is TIMEOUT, so the client
// hangs up mid-request when the context ends, and exits 0 if the request
// failed with the context's error, as Go reports it, 1 otherwise.
//
//	go_client post URL BYTES TIMES STATUS [GRPC-TIMEOUT]
//
// POSTs a body of BYTES zero bytes TIMES times, one connection each, with
// the grpc-timeout header when given, and exits 0 if every answer had
// STATUS, 1 if any request failed (a write error instead of the answer) or
// had another status.
package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"time"
)

func post(args []string) {
	if len(args) < 4 {
		fmt.Fprintln(os.Stderr, "usage: go_client post URL BYTES TIMES STATUS [GRPC-TIMEOUT]")
		os.Exit(2)
	}
	n, err1 := strconv.Atoi(args[1])
	times, err2 := strconv.Atoi(args[2])
	status, err3 := strconv.Atoi(args[3])
	if err1 != nil || err2 != nil || err3 != nil {
		fmt.Fprintln(os.Stderr, "go_client post: BYTES, TIMES and STATUS are numbers")
		os.Exit(2)
	}
	body := make([]byte, n)
	failed := 0
	for i := 0; i < times; i++ {
		req, err := http.NewRequest(http.MethodPost, args[0], bytes.NewReader(body))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		if len(args) > 4 {
			req.Header.Set("grpc-timeout", args[4])
		}
		req.Close = true // a connection each: every answer is an early one
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			fmt.Println("go peer: no answer:", err)
			failed++
			continue
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != status {
			fmt.Println("go peer: unexpected status:", resp.Status)
			failed++
		}
	}
	fmt.Printf("go peer: %d of %d POSTs without the %d answer\n", failed, times, status)
	if failed > 0 {
		os.Exit(1)
	}
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "post" {
		post(os.Args[2:])
		return
	}
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: go_client URL TIMEOUT")
		os.Exit(2)
	}
	timeout, err := time.ParseDuration(os.Args[2])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, os.Args[1], nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	resp, err := http.DefaultClient.Do(req)
	if err == nil {
		resp.Body.Close()
		fmt.Println("go peer: got a response, expected a canceled request:", resp.Status)
		os.Exit(1)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		fmt.Println("go peer: unexpected error:", err)
		os.Exit(1)
	}
	fmt.Println("go peer: request canceled by its context:", err)
}
