package pipelines

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"

	"longctx/progress"
	"longctx/shards"
	"longctx/storage"
)

// PreparePlan is a built prepare pipeline and what it will process.
type PreparePlan struct {
	Pipeline      *beam.Pipeline
	Output        string
	Outputs       PrepareOutputs
	Tasks         []FileTask
	TokenizerHash string
	InputBytes    int64
}

// PlanPrepare validates cfg, loads the tokenizer (for its hash), lists the
// input files and builds the pipeline. Running it is the caller's choice of
// runner (beamx.Run in the CLI, ptest.Run in tests).
func PlanPrepare(ctx context.Context, cfg PrepareConfig) (*PreparePlan, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("prepare config: %w", err)
	}
	tok, err := loadTokenizer(ctx, cfg.Tokenizer)
	if err != nil {
		return nil, err
	}
	tasks, err := ListTasks(ctx, cfg, tok.Hash())
	if err != nil {
		return nil, err
	}
	// A killed run leaves its in-progress writes behind; one prepare at a
	// time owns an output, so they are garbage now.
	if n, err := storage.RemoveTemp(ctx, cfg.Output); err != nil {
		return nil, fmt.Errorf("clean temp files under %s: %w", cfg.Output, err)
	} else if n > 0 {
		slog.Info("prepare: removed temp files of an interrupted run", "output", cfg.Output, "files", n)
	}
	p, s := beam.NewPipelineWithRoot()
	out, err := BuildPrepare(s, cfg, tok.Hash(), tasks)
	if err != nil {
		return nil, err
	}
	plan := &PreparePlan{Pipeline: p, Output: cfg.Output, Outputs: out, Tasks: tasks, TokenizerHash: tok.Hash()}
	for _, t := range tasks {
		plan.InputBytes += t.Size
	}
	return plan, nil
}

// StartProgress shows a bar over the input bytes for DoFns running in this
// process; call the returned function when the run ends.
func (p *PreparePlan) StartProgress() func() {
	b := progress.New("prepare", p.InputBytes, progress.Options{Unit: "B"})
	localBar.Store(b)
	return func() { localBar.Store(nil); b.Done() }
}

// ReadManifest reads the manifest a finished run wrote under out.
func ReadManifest(ctx context.Context, out string) (*shards.PrepareManifest, error) {
	return shards.ReadPrepareManifest(ctx, storage.Join(out, "manifest.json"))
}
