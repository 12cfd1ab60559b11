package ledger

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
)

// BenchmarkAdd is the cost a request pays for its row.
func BenchmarkAdd(b *testing.B) {
	r := sampleRow(time.Now())

	// Room in the queue: the queue is emptied, off the clock, whenever it
	// fills, so every Add measured is a row queued.
	b.Run("queued", func(b *testing.B) {
		w := &Writer{queue: make(chan Row, DefaultQueueSize), log: zap.NewNop()}
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if len(w.queue) == cap(w.queue) {
				b.StopTimer()
				for len(w.queue) > 0 {
					<-w.queue
				}
				b.StartTimer()
			}
			w.Add(r)
		}
		if w.dropped.Load() != 0 {
			b.Fatalf("%d dropped", w.dropped.Load())
		}
	})
	// Many requests at once, with a goroutine taking rows off the queue as
	// the writer does (minus SQLite): channel contention, and drops when
	// the taker falls behind.
	b.Run("queued-parallel", func(b *testing.B) {
		w := &Writer{queue: make(chan Row, DefaultQueueSize), log: zap.NewNop()}
		done := make(chan struct{})
		go func() {
			defer close(done)
			for range w.queue {
			}
		}()
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				w.Add(r)
			}
		})
		b.StopTimer()
		close(w.queue)
		<-done
		b.ReportMetric(float64(w.dropped.Load())/float64(b.N), "dropped/op")
	})
	// A full queue: the row is counted and dropped.
	b.Run("dropped", func(b *testing.B) {
		w := &Writer{queue: make(chan Row), log: zap.NewNop()}
		w.full.Store(true) // the episode's warning was logged already
		b.ReportAllocs()
		for b.Loop() {
			w.Add(r)
		}
	})
}

// BenchmarkWriteBatch is how fast the writer stores rows, one transaction
// per batch. The pause between chunks is left out: it costs no CPU, and in
// an idle process it lasts a millisecond, which is all this would time.
func BenchmarkWriteBatch(b *testing.B) {
	pause := letRequestsIn
	letRequestsIn = func() {}
	b.Cleanup(func() { letRequestsIn = pause })
	for _, size := range []int{1, 64, DefaultMaxBatch} {
		b.Run(fmt.Sprint(size), func(b *testing.B) {
			w, err := Open(b.TempDir()+"/usage.db", Options{FlushInterval: time.Hour})
			require.NoError(b, err)
			batch := make([]Row, size)
			for i := range batch {
				batch[i] = sampleRow(time.Now())
			}
			start := time.Now()
			for b.Loop() {
				require.NoError(b, w.insert(batch))
			}
			b.ReportMetric(float64(b.N*size)/time.Since(start).Seconds(), "rows/s")
			b.ReportMetric(0, "ns/op")
			require.NoError(b, w.Close(context.Background()))
		})
	}
}
