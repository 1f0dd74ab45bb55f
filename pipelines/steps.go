package pipelines

import (
	"context"
	"sync"

	"longctx/shards"
)

// prepare is a chain of small steps over one common document type, as in
// datatrove: read -> sanitise -> tokenize -> length filter -> write. Each
// step keeps its own counters (documents in, out, dropped by reason, and
// its own measures), so adding a step (a quality filter, dedup) is adding a
// function, and the report shows where documents went.

// Doc is one record on its way from the reader to the token cache.
type Doc struct {
	Document
	// Drop is why the record left the chain: a reader fault, or set by a
	// step. Later steps do not see it; it ends in the dead letters.
	Drop   *Malformed
	Text   string   // sanitised text (sanitise)
	Tokens []uint32 // token ids, EOS appended (tokenize)
}

// Step is one stage of the chain. Run sees only documents no earlier step
// dropped; it drops one by setting d.Drop, and adds its own measures to c.
// An error fails the file (it is for write failures, not for bad records).
type Step struct {
	Name string
	// Parallel steps are pure per-document work run on the tokenizer
	// goroutines; the others run one document at a time in input order.
	// Parallel steps must come first.
	Parallel bool
	Run      func(d *Doc, c Counts) error
}

// Counts are a step's own measures (e.g. invalid_utf8, tokens).
type Counts map[string]int64

// Add adds n to the named measure.
func (c Counts) Add(name string, n int64) { c[name] += n }

// Names of the built-in steps, as they appear in the report.
const (
	StepRead     = "read"
	StepSanitise = "sanitise"
	StepTokenize = "tokenize"
	StepLength   = "length_filter"
	StepWrite    = "write"
)

// sanitiseStep replaces ill-formed UTF-8 (per maximal subpart) by U+FFFD.
func sanitiseStep() Step {
	return Step{Name: StepSanitise, Parallel: true, Run: func(d *Doc, c Counts) error {
		var n int
		d.Text, n = sanitizeUTF8(d.Document.Text)
		d.Document.Text = "" // the raw text is no longer needed
		c.Add("invalid_utf8", int64(n))
		c.Add("text_bytes", int64(len(d.Text)))
		return nil
	}}
}

// tokenBufs recycles token slices: the sink returns each document's after
// writing it, so steady state allocates none (a fresh slice per document
// was 2 bytes per text byte, and most of prepare's garbage).
var tokenBufs sync.Pool

func getTokenBuf() []uint32 {
	if b, ok := tokenBufs.Get().(*[]uint32); ok {
		return (*b)[:0]
	}
	return nil
}

// recycleTokens hands d's token slice back; d must not be used after.
func recycleTokens(d *Doc) {
	if cap(d.Tokens) > 0 && cap(d.Tokens) <= 1<<24 {
		b := d.Tokens[:0]
		tokenBufs.Put(&b)
	}
	d.Tokens = nil
}

// tokenizeStep encodes the sanitised text, EOS appended.
func tokenizeStep(tok Tokenizer) Step {
	return Step{Name: StepTokenize, Parallel: true, Run: func(d *Doc, c Counts) error {
		d.Tokens = tok.AppendDoc(getTokenBuf(), d.Text)
		c.Add("tokens", int64(len(d.Tokens)))
		return nil
	}}
}

// lengthStep drops documents outside [min, max] tokens (0 = no limit).
func lengthStep(source, file string, min, max int) Step {
	return Step{Name: StepLength, Run: func(d *Doc, c Counts) error {
		n := len(d.Tokens)
		reason, limit := "", 0
		switch {
		case max > 0 && n > max:
			reason, limit = ReasonTooLong, max
		case min > 0 && n < min:
			reason, limit = ReasonTooShort, min
		default:
			return nil
		}
		c.Add("dropped_tokens", int64(n))
		d.Drop = &Malformed{Source: source, File: file, Unit: d.Unit, Record: d.Record, Records: 1,
			Reason: reason, Limit: limit, ID: d.ID, Tokens: n}
		return nil
	}}
}

// writeStep appends the document to the token cache.
func writeStep(add func(id string, tokens []uint32) error) Step {
	return Step{Name: StepWrite, Run: func(d *Doc, c Counts) error {
		c.Add("tokens", int64(len(d.Tokens)))
		c.Add("text_bytes", int64(len(d.Text)))
		return add(d.ID, d.Tokens)
	}}
}

// stepCounter accumulates one step's statistics.
type stepCounter struct {
	in, out int64
	drops   map[string]int64
	counts  Counts
}

func newCounters(n int) []stepCounter {
	cs := make([]stepCounter, n)
	for i := range cs {
		cs[i].counts = Counts{}
	}
	return cs
}

// apply runs step s on d and counts the outcome.
func (c *stepCounter) apply(s *Step, d *Doc) error {
	if d.Drop != nil {
		return nil
	}
	c.in++
	if err := s.Run(d, c.counts); err != nil {
		return err
	}
	if d.Drop != nil {
		if c.drops == nil {
			c.drops = map[string]int64{}
		}
		c.drops[d.Drop.Reason] += d.Drop.Records
		return nil
	}
	c.out++
	return nil
}

func (c *stepCounter) merge(o stepCounter) {
	c.in += o.in
	c.out += o.out
	for r, n := range o.drops {
		if c.drops == nil {
			c.drops = map[string]int64{}
		}
		c.drops[r] += n
	}
	for k, n := range o.counts {
		c.counts[k] += n
	}
}

func (c stepCounter) stats(name string) shards.StepStats {
	s := shards.StepStats{Name: name, In: c.in, Out: c.out, Drops: c.drops}
	for k, n := range c.counts {
		if n != 0 {
			if s.Counts == nil {
				s.Counts = map[string]int64{}
			}
			s.Counts[k] = n
		}
	}
	return s
}

type docBatch struct {
	docs []Doc
	done chan struct{}
}

// runChain reads records with read (which returns the number of records it
// saw, counted by the reader itself), runs them through steps, and calls
// sink for every record in input order once the chain is done with it,
// dropped or not. Parallel steps run on `workers` goroutines; output order
// and every count are independent of workers. The first error from read,
// a step or sink ends the run and is returned; nothing is left waiting.
func runChain(ctx context.Context, read func(Emit) (int64, error), steps []Step, workers int, sink func(*Doc) error) ([]shards.StepStats, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	npar := 0
	for npar < len(steps) && steps[npar].Parallel {
		npar++
	}
	jobs := make(chan *docBatch, workers)
	ordered := make(chan *docBatch, 2*workers+2)
	var readCount stepCounter
	var records int64
	readErr := make(chan error, 1)

	go func() {
		defer close(jobs)
		defer close(ordered)
		var cur *docBatch
		var curBytes int
		// A batch goes to the worker queue first, then to the ordered
		// queue: a batch the sink waits on has always been handed to a
		// worker, so it is always finished.
		send := func() error {
			if cur == nil {
				return nil
			}
			b := cur
			cur, curBytes = nil, 0
			select {
			case jobs <- b:
			case <-ctx.Done():
				return ctx.Err()
			}
			select {
			case ordered <- b:
			case <-ctx.Done():
				return ctx.Err()
			}
			return nil
		}
		add := func(d Doc, n int) error {
			if cur == nil {
				cur = &docBatch{done: make(chan struct{})}
			}
			cur.docs = append(cur.docs, d)
			curBytes += n
			if curBytes >= 1<<20 || len(cur.docs) >= 512 {
				return send()
			}
			return nil
		}
		n, err := read(Emit{
			Doc: func(d Document) error {
				readCount.out++
				return add(Doc{Document: d}, len(d.Text))
			},
			Bad: func(m Malformed) error {
				if readCount.drops == nil {
					readCount.drops = map[string]int64{}
				}
				readCount.drops[m.Reason] += m.Records
				return add(Doc{Drop: &m}, 0)
			},
		})
		if err == nil {
			err = send()
		}
		records = n
		readErr <- err
	}()

	perWorker := make([][]stepCounter, workers)
	stepErrs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		perWorker[w] = newCounters(npar)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range jobs {
				if stepErrs[w] == nil {
				docs:
					for i := range b.docs {
						for s := range npar {
							if err := perWorker[w][s].apply(&steps[s], &b.docs[i]); err != nil {
								stepErrs[w] = err
								cancel()
								break docs
							}
						}
					}
				}
				close(b.done)
			}
		}()
	}

	counters := newCounters(len(steps))
	var runErr error
	for b := range ordered {
		if runErr == nil {
			select {
			case <-b.done:
			case <-ctx.Done():
			}
		}
		if runErr != nil || ctx.Err() != nil {
			if runErr == nil {
				runErr = ctx.Err()
			}
			cancel()
			continue // drain so the reader ends
		}
	docs:
		for i := range b.docs {
			d := &b.docs[i]
			for s := npar; s < len(steps); s++ {
				if err := counters[s].apply(&steps[s], d); err != nil {
					runErr = err
					cancel()
					break docs
				}
			}
			if err := sink(d); err != nil {
				runErr = err
				cancel()
				break
			}
		}
	}
	rerr := <-readErr
	wg.Wait()
	// The first cause wins over the cancellations it caused.
	for _, err := range stepErrs {
		if err != nil && (runErr == nil || runErr == context.Canceled) {
			runErr = err
		}
	}
	if rerr != nil && (runErr == nil || runErr == context.Canceled && rerr != context.Canceled) {
		runErr = rerr
	}
	if runErr != nil {
		return nil, runErr
	}
	for w := range perWorker {
		for s := range npar {
			counters[s].merge(perWorker[w][s])
		}
	}
	readCount.in = records
	stats := []shards.StepStats{readCount.stats(StepRead)}
	for s := range steps {
		stats = append(stats, counters[s].stats(steps[s].Name))
	}
	return stats, nil
}
