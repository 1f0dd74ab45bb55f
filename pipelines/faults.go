package pipelines

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/x/beamx"

	"longctx/storage"
)

// A failure inside a Beam pipeline reaches the caller wrapped in the
// runner's account of the whole plan (a kilobyte or more, the cause at the
// end, sometimes as text from another process). DoFns mark their error
// between two fixed tags; the caller prints only what is between them and
// keeps the full account in a debug log.
const (
	faultOpen  = "<<longctx: "
	faultClose = " :longctx>>"
)

// markFault tags err so Fault can find it in a runner's error text.
func markFault(err error) error {
	if err == nil {
		return nil
	}
	return &markedError{err}
}

type markedError struct{ err error }

func (e *markedError) Error() string {
	return faultOpen + strings.Join(strings.Fields(e.err.Error()), " ") + faultClose
}
func (e *markedError) Unwrap() error { return e.err }

// Fault returns the one-line cause a DoFn marked inside a runner's error
// (the last one, which is the one that failed the job), or "" if none is
// marked.
func Fault(err error) string {
	if err == nil {
		return ""
	}
	var m *markedError
	if errors.As(err, &m) {
		return strings.Join(strings.Fields(m.err.Error()), " ")
	}
	s := err.Error()
	end := strings.LastIndex(s, faultClose)
	if end < 0 {
		return ""
	}
	start := strings.LastIndex(s[:end], faultOpen)
	if start < 0 {
		return ""
	}
	return s[start+len(faultOpen) : end]
}

// Run runs the plan's pipeline on the runner chosen by Beam's flags. A
// failure comes back as one line naming the file and the cause; the
// runner's full error goes to <output>/debug.log, which the line names.
func (p *PreparePlan) Run(ctx context.Context) error {
	_, err := beamx.RunWithMetrics(ctx, p.Pipeline)
	return p.explain(ctx, err)
}

// RunWith is Run on a named runner (tests).
func (p *PreparePlan) RunWith(ctx context.Context, runner string) error {
	_, err := beam.Run(ctx, runner, p.Pipeline)
	return p.explain(ctx, err)
}

func (p *PreparePlan) explain(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	log := storage.Join(p.Output, "debug.log")
	dump := fmt.Sprintf("%s prepare pipeline failed:\n%s\n", time.Now().UTC().Format(time.RFC3339), err)
	where := "full error in " + log
	if werr := storage.WriteFile(ctx, log, []byte(dump)); werr != nil {
		where = "full error could not be written to " + log + ": " + werr.Error()
	}
	cause := Fault(err)
	if cause == "" {
		// Not from a DoFn (the runner itself failed): its first line.
		cause, _, _ = strings.Cut(err.Error(), "\n")
		if len(cause) > 300 {
			cause = cause[:300] + "..."
		}
	}
	return &PipelineError{Cause: cause, Log: log, where: where, err: err}
}

// PipelineError is a failed prepare run: the marked cause and where the
// runner's full error was written.
type PipelineError struct {
	Cause string
	Log   string
	where string
	err   error
}

func (e *PipelineError) Error() string { return e.Cause + " (" + e.where + ")" }
func (e *PipelineError) Unwrap() error { return e.err }
