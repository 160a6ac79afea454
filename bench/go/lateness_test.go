// SPDX-License-Identifier: MIT

// Package lateness holds Go's side of cctx-bench rows that Go's own benchmark
// file lacks, for bench/run-go.sh --compare, which runs them next to Go's own
// context benchmarks: DeadlineLateness (here), the same measure taken on Go's
// context package, and CommonParentCancelLoopOnly (loop_only_test.go).
// Standard library only, built in GOPATH mode with no network.
package lateness

import (
	"context"
	"sort"
	"testing"
	"time"
)

// With 100,000 deadlines an hour away armed, how late does a 1 to 2 ms
// deadline end its context? The timeouts are cctx-bench's: the same xorshift
// generator from the same seed. Go gives no hook at the moment its timer
// fires, so lateness here is the time a goroutine blocked on Done sees the
// channel closed, minus the deadline; in Go that goroutine usually runs on the
// thread that ran the timer, right after it. ns/op is the mean lateness;
// p50-ns and p99-ns are its percentiles.
func BenchmarkDeadlineLateness(b *testing.B) {
	b.Run("timers=100000", func(b *testing.B) {
		far := make([]context.CancelFunc, 100000)
		for i := range far {
			_, far[i] = context.WithTimeout(context.Background(), time.Hour)
		}
		defer func() {
			for _, cancel := range far {
				cancel()
			}
		}()
		late := make([]int64, b.N)
		rng := uint64(0x9e3779b97f4a7c15)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			rng ^= rng << 13
			rng ^= rng >> 7
			rng ^= rng << 17
			timeout := time.Millisecond + time.Duration(rng%1000000)
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			deadline, _ := ctx.Deadline()
			<-ctx.Done()
			late[i] = int64(time.Since(deadline))
			cancel()
		}
		b.StopTimer()
		var sum float64
		for _, l := range late {
			sum += float64(l)
		}
		sort.Slice(late, func(i, j int) bool { return late[i] < late[j] })
		b.ReportMetric(sum/float64(b.N), "ns/op")
		b.ReportMetric(float64(percentile(late, 50)), "p50-ns")
		b.ReportMetric(float64(percentile(late, 99)), "p99-ns")
	})
}

// The sample at percentile p of sorted, rounded as cctx-bench rounds it.
func percentile(sorted []int64, p float64) int64 {
	i := int(p/100*float64(len(sorted)-1) + 0.5)
	if i >= len(sorted) {
		i = len(sorted) - 1
	}
	return sorted[i]
}
