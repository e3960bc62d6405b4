package tally

import "context"

// Runner is the lifecycle every background service of tally shares: the
// ingest writer and buffer, the webhook dispatcher (usage.Dispatcher), the
// rollup scheduler. The app starts its runners in order and stops them in
// the reverse order.
//
// Start launches the runner's goroutines and returns at once. Stop stops
// accepting work, finishes or drains what the runner holds and returns once
// its goroutines are done; when ctx ends first it abandons what is left
// and returns ctx's error.
type Runner interface {
	Start()
	Stop(ctx context.Context) error
}
