// SPDX-License-Identifier: MIT
// A peer nobody here wrote the HTTP stack of: Go's net/http client (standard
// library only). It sends one request with a context whose timeout is the
// first argument, so the client hangs up mid-request when the context ends,
// and exits 0 if the request failed with the context's error, as Go reports
// it, 1 otherwise.
//
//	go_client URL TIMEOUT   e.g. go_client http://127.0.0.1:8080/slow 200ms
package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"time"
)

func main() {
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
