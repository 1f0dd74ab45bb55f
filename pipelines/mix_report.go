package pipelines

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image/color"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"

	"longctx/mixture"
	"longctx/shards"
	"longctx/storage"
)

// MixReportFiles are the report's files in the output directory.
type MixReportFiles struct {
	JSON     string `json:"json"`
	Markdown string `json:"markdown"`
	PNG      string `json:"png"`
}

// MixReport is the mix report (report.json). It holds no timings, so equal
// runs give equal reports.
type MixReport struct {
	Name                string               `json:"name"`
	SeqLen              int                  `json:"seq_len"`
	Seed                uint64               `json:"seed"`
	TotalTokens         int64                `json:"total_tokens"`
	MixtureConfigHash   string               `json:"mixture_config_hash"`
	TokenizerHash       string               `json:"tokenizer_hash"`
	PrepareManifestHash string               `json:"prepare_manifest_hash"`
	Sources             []shards.SourceStats `json:"sources"`
	Warnings            []string             `json:"warnings,omitempty"`
	Packing             shards.PackStats     `json:"packing"`
	Fill                float64              `json:"fill"`
	SplitDocs           int64                `json:"split_docs"`
	DocLengths          shards.LengthHist    `json:"doc_lengths"`
	Shards              int                  `json:"shards"`
	ShardBytes          int64                `json:"shard_bytes"`
}

func newMixReport(plan mixture.Plan, m shards.Manifest) MixReport {
	r := MixReport{Name: m.Name, SeqLen: m.SeqLen, Seed: m.Seed, TotalTokens: plan.Total, MixtureConfigHash: m.MixtureConfigHash,
		TokenizerHash: m.TokenizerHash, PrepareManifestHash: m.PrepareManifestHash, Sources: m.Sources, Warnings: plan.Warnings,
		Packing: m.Packing, Fill: m.Packing.Fill(), SplitDocs: m.SplitDocs, DocLengths: m.DocLengths, Shards: len(m.Shards)}
	for _, s := range m.Shards {
		r.ShardBytes += s.Bytes
	}
	return r
}

// Markdown renders the report for people: the mixture table, warnings,
// packing and the document length histogram.
func (r MixReport) Markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Mixture %s\n\n", r.Name)
	fmt.Fprintf(&b, "%d tokens in sequences of %d, seed %d. Lineage: mixture config `%s`, tokenizer `%s`, prepare manifest `%s`.\n\n",
		r.TotalTokens, r.SeqLen, r.Seed, short12(r.MixtureConfigHash), short12(r.TokenizerHash), short12(r.PrepareManifestHash))
	b.WriteString("| source | weight | target tokens | realized tokens | realized/target | share | available | repeats | docs |\n")
	b.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	var realized int64
	for _, s := range r.Sources {
		realized += s.RealizedTokens
	}
	for _, s := range r.Sources {
		ratio := 0.0
		if s.TargetTokens > 0 {
			ratio = float64(s.RealizedTokens) / float64(s.TargetTokens)
		}
		fmt.Fprintf(&b, "| %s | %.3f | %d | %d | %.4f | %.2f%% | %d | %.3f | %d |\n", s.Source, s.Weight, s.TargetTokens, s.RealizedTokens,
			ratio, 100*float64(s.RealizedTokens)/float64(max(1, realized)), s.AvailableTokens, s.Repeats, s.Docs)
	}
	for _, s := range r.Sources {
		if s.DuplicateIDs > 0 || s.DuplicateContent > 0 {
			fmt.Fprintf(&b, "\n%s: %d repeated ids dropped (first occurrence kept); %d documents repeat earlier content under another id, %d of them dropped.\n",
				s.Source, s.DuplicateIDs, s.DuplicateContent, s.DroppedContent)
		}
	}
	if len(r.Warnings) > 0 {
		b.WriteString("\nWarnings:\n\n")
		for _, w := range r.Warnings {
			fmt.Fprintf(&b, "- %s\n", w)
		}
	}
	p := r.Packing
	fmt.Fprintf(&b, "\n## Packing\n\n%d sequences in %d shards (%d bytes); fill **%.3f%%** (%d real, %d padding tokens); "+
		"%d pieces, %d of them full-length, %d cut again to fill free space; %d documents split across sequences.\n\n",
		p.Sequences, r.Shards, r.ShardBytes, 100*r.Fill, p.Real, p.Pad, p.Pieces, p.FullPieces, p.Cuts, r.SplitDocs)
	b.WriteString("Document lengths (taken repetitions, tokens):\n\n")
	b.WriteString(r.DocLengths.Markdown("tokens"))
	b.WriteString("\n![target vs realized](mixture.png)\n")
	return b.String()
}

func short12(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

// writeMixReport writes report.json, report.md and mixture.png into out.
func writeMixReport(ctx context.Context, out string, plan mixture.Plan, m shards.Manifest) (MixReportFiles, error) {
	r := newMixReport(plan, m)
	files := MixReportFiles{JSON: storage.Join(out, "report.json"), Markdown: storage.Join(out, "report.md"), PNG: storage.Join(out, "mixture.png")}
	js, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return files, err
	}
	if err := storage.WriteFile(ctx, files.JSON, append(js, '\n')); err != nil {
		return files, err
	}
	if err := storage.WriteFile(ctx, files.Markdown, []byte(r.Markdown())); err != nil {
		return files, err
	}
	png, err := mixturePNG(r)
	if err != nil {
		return files, fmt.Errorf("mix report chart: %w", err)
	}
	return files, storage.WriteFile(ctx, files.PNG, png)
}

// mixturePNG draws target vs realized tokens per source as grouped bars.
func mixturePNG(r MixReport) ([]byte, error) {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("Mixture %s: target vs realized tokens per source", r.Name)
	p.Y.Label.Text = "tokens (millions)"
	var target, realized plotter.Values
	var names []string
	for _, s := range r.Sources {
		target = append(target, float64(s.TargetTokens)/1e6)
		realized = append(realized, float64(s.RealizedTokens)/1e6)
		names = append(names, s.Source)
	}
	w := vg.Points(18)
	bt, err := plotter.NewBarChart(target, w)
	if err != nil {
		return nil, err
	}
	bt.Color = color.RGBA{R: 120, G: 140, B: 200, A: 255}
	bt.Offset = -w / 2
	br, err := plotter.NewBarChart(realized, w)
	if err != nil {
		return nil, err
	}
	br.Color = color.RGBA{R: 230, G: 140, B: 60, A: 255}
	br.Offset = w / 2
	p.Add(bt, br)
	p.Legend.Add("target", bt)
	p.Legend.Add("realized", br)
	p.Legend.Top = true
	p.NominalX(names...)
	wt, err := p.WriterTo(vg.Points(float64(160+90*len(names))), vg.Points(320), "png")
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if _, err := wt.WriteTo(&buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
