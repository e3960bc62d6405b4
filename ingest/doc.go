// Package ingest is tally's write path for events: it decodes and validates
// what clients send (Validator), gates it by quotas and hands it to a
// group-commit writer (Pipeline, Writer) that stores many requests in one
// transaction and answers each of them only after that transaction
// committed. In-process producers that must never block, such as
// auto-tracking inside a request or the SDK, use a bounded Buffer that counts
// what it had to drop. Other tools' formats (Segment, PostHog,
// CloudEvents) have one decoder each into Foreign, which Recorder.Foreign
// stores through the same rules and pipeline.
//
// The pieces are wired in this order, and stopped in the reverse one:
//
//	v := ingest.NewValidator(ingest.Config{})
//	m := ingest.NewMetrics(reg, 100)
//	w := ingest.NewWriter(db, ingest.WriterConfig{}, m)
//	p := ingest.NewPipeline(w, meter, m)
//	b := ingest.NewBuffer(p, 0, m)
//	w.Start(); b.Start()
//	...
//	b.Stop(ctx); w.Stop(ctx); db.Close()
package ingest
