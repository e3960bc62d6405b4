package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// benchLive is the -live phase: batch ingest for d with n subscribers
// connected, between two phases of d/2 without. The log grows and the
// machine's load drifts: the ratio is to the phases just before and just
// after, weighed alike.
func benchLive(ctx context.Context, url string, keys []string, n int, d time.Duration, ingest func(time.Duration) *phase, perReq int, rep *report) error {
	before := ingest(d / 2)
	l, err := startLive(ctx, url, keys, n)
	if err != nil {
		return err
	}
	with := ingest(d)
	connected := l.stop()
	after := ingest(d / 2)
	rep.add("batch ingest, no subscriber (before)", before, perReq)
	rep.add(fmt.Sprintf("batch ingest, %d live subscribers", n), with, perReq)
	rep.add("batch ingest, no subscriber (after)", after, perReq)
	rep.ratio(fmt.Sprintf("batch ingest with %d live subscribers / without (≥ 0.9)", n), with.eps(perReq), (before.eps(perReq)+after.eps(perReq))/2)
	rep.Notes = append(rep.Notes, fmt.Sprintf("%d live subscribers over %d tenants read %d events in %.1fs (%.0f/s each); %d streams ended by the server (slow), %d broken",
		n, min(n, len(keys)), l.frames.Load(), connected.Seconds(), float64(l.frames.Load())/connected.Seconds()/float64(n), l.ends.Load(), l.retries.Load()))
	return nil
}

// liveLoad is the -live phase's subscribers: real SSE clients of GET
// /api/analytics/events/stream, spread over the bench's tenants (one key
// each, round robin), each reading every frame its tenant's stream sends
// and resuming with Last-Event-ID when the server ends the stream (a slow
// client's "end" event) or the connection breaks.
type liveLoad struct {
	frames  atomic.Int64 // events read, every subscriber
	ends    atomic.Int64 // "end" events the server sent
	retries atomic.Int64 // connections that broke or failed
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	started time.Time
}

// startLive connects n subscribers and returns once every one of them has
// its stream open (a 200 answer), or the first answer that is not.
func startLive(ctx context.Context, url string, keys []string, n int) (*liveLoad, error) {
	ctx, cancel := context.WithCancel(ctx)
	l := &liveLoad{cancel: cancel}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: n}} // no timeout: a stream lasts
	opened := make(chan error, n)
	for i := range n {
		l.wg.Go(func() { l.follow(ctx, client, url, keys[i%len(keys)], opened) })
	}
	timeout := time.After(30 * time.Second)
	for range n {
		select {
		case err := <-opened:
			if err != nil {
				l.stop()
				return nil, err
			}
		case <-timeout:
			l.stop()
			return nil, fmt.Errorf("bench -live: the streams did not all open within 30s")
		}
	}
	l.started = time.Now()
	return l, nil
}

// stop disconnects every subscriber and returns how long they were all
// connected.
func (l *liveLoad) stop() time.Duration {
	l.cancel()
	l.wg.Wait()
	return time.Since(l.started)
}

// follow is one subscriber: it reports its first answer on opened, then
// reads until ctx ends.
func (l *liveLoad) follow(ctx context.Context, client *http.Client, url, key string, opened chan<- error) {
	var last []byte // the last event id read: where a new connection resumes
	for first := true; ctx.Err() == nil; first = false {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/api/analytics/events/stream", nil)
		if err != nil {
			opened <- err
			return
		}
		req.Header.Set("Authorization", "Bearer "+key)
		if last != nil {
			req.Header.Set("Last-Event-ID", string(last))
		}
		res, err := client.Do(req)
		if err == nil && res.StatusCode != http.StatusOK {
			body, _ := io.ReadAll(io.LimitReader(res.Body, 512))
			res.Body.Close()
			err = fmt.Errorf("bench -live: the stream answered %s (its keys need analytics:read too): %s", res.Status, bytes.TrimSpace(body))
		}
		if first {
			opened <- err
			if err != nil {
				return
			}
		}
		if err != nil {
			if ctx.Err() == nil {
				l.retries.Add(1)
				time.Sleep(100 * time.Millisecond)
			}
			continue
		}
		var ended bool
		last, ended = l.read(res.Body, last)
		res.Body.Close()
		if !ended && ctx.Err() == nil {
			l.retries.Add(1)
		}
	}
}

// read counts the frames of one stream until it ends, and returns the
// last event id it read and whether the server ended the stream.
func (l *liveLoad) read(body io.Reader, last []byte) ([]byte, bool) {
	ended := false
	r := bufio.NewReaderSize(body, 64<<10)
	for {
		line, err := r.ReadSlice('\n')
		switch {
		case bytes.HasPrefix(line, []byte("id: ")):
			last = append(last[:0], bytes.TrimSpace(line[4:])...)
			l.frames.Add(1)
		case bytes.HasPrefix(line, []byte("event: end")):
			l.ends.Add(1)
			ended = true
		}
		if err == bufio.ErrBufferFull {
			for err == bufio.ErrBufferFull { // a line longer than the buffer: the rest of it
				_, err = r.ReadSlice('\n')
			}
		}
		if err != nil {
			return last, ended
		}
	}
}
