package pipelines

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	beamlog "github.com/apache/beam/sdks/v2/go/pkg/beam/log"

	"longctx/shards"
)

// RunPrepare plans the prepare pipeline for cfg, runs it on the named Beam
// runner (registered by the caller's imports) and reads back its manifest.
// It prints the plan to log and the per-source summary to out; a dry run
// builds and submits the job but reads nothing back (nil manifest).
func RunPrepare(ctx context.Context, cfg PrepareConfig, runner string, dryRun bool, out, log io.Writer) (*shards.PrepareManifest, error) {
	plan, err := PlanPrepare(ctx, cfg)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(log, "prepare: %d input files (%.1f MB) in %d sources, runner %s, output %s\n",
		len(plan.Tasks), float64(plan.InputBytes)/1e6, len(cfg.Sources), runner, cfg.Output)
	if !beam.Initialized() {
		beam.Init()
	}
	start := time.Now()
	stop := plan.StartProgress()
	err = plan.RunWith(ctx, runner) // one line naming the file and cause; the full error in the debug log
	stop()
	if err != nil {
		return nil, err
	}
	if dryRun {
		fmt.Fprintln(log, "prepare: dry run, nothing written")
		return nil, nil
	}
	m, err := ReadManifest(ctx, cfg.Output)
	if err != nil {
		return nil, fmt.Errorf("pipeline finished but its manifest is missing: %w", err)
	}
	el := time.Since(start)
	fmt.Fprintf(out, "prepare: done in %s: %.1f MB in, %.2f MB/s\n", el.Round(time.Millisecond), float64(plan.InputBytes)/1e6,
		float64(plan.InputBytes)/1e6/el.Seconds())
	for _, s := range m.Sources {
		fmt.Fprintf(out, "  %-12s files %4d  read %8d  written %8d  dropped %6d  tokens %12d\n", s.Name, s.Stats.Files,
			s.Stats.Read, s.Stats.Written, s.Stats.Dropped(), s.Stats.Tokens)
	}
	fmt.Fprintf(out, "manifest %s, report %s, dead letters %s (under %s)\n", "manifest.json", m.Report, m.DeadLetters, cfg.Output)
	return m, nil
}

// BeamLogger forwards Beam's log lines at or above Min to slog, so Beam's
// info-level execution plan stays out of a readable console.
type BeamLogger struct{ Min beamlog.Severity }

// Log implements beamlog.Logger.
func (l BeamLogger) Log(ctx context.Context, sev beamlog.Severity, _ int, msg string) {
	if sev < l.Min {
		return
	}
	level := slog.LevelWarn
	if sev >= beamlog.SevError {
		level = slog.LevelError
	}
	slog.Log(ctx, level, "beam: "+msg)
}
