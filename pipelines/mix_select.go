package pipelines

// The select step of mix: one token cache in, the pieces the plan takes out.

import (
	"context"
	"fmt"

	"longctx/mixture"
	"longctx/shards"
)

// selectCounts are the select step's counts, summed over files (a combiner in
// Beam).
type selectCounts struct {
	Tokens        map[string]int64  `json:"tokens"`         // per source, tokens taken
	Docs          map[string]int64  `json:"docs"`           // per source, document repetitions taken
	Truncated     map[string]int64  `json:"truncated"`      // per source, tokens left out of boundary documents
	SplitDocs     int64             `json:"split_docs"`     // repetitions longer than seq_len
	DocLengths    shards.LengthHist `json:"doc_lengths"`    // lengths of the taken repetitions
	BlocksRead    int64             `json:"blocks_read"`    // cache blocks decoded
	BlocksSkipped int64             `json:"blocks_skipped"` // cache blocks with no selected document, not decoded
	SelectBundles int64             `json:"-"`              // Beam bundles select ran in (from the runner's metrics)
}

func newSelectCounts() selectCounts {
	return selectCounts{Tokens: map[string]int64{}, Docs: map[string]int64{}, Truncated: map[string]int64{}}
}

func (c *selectCounts) merge(o selectCounts) {
	for k, v := range o.Tokens {
		c.Tokens[k] += v
	}
	for k, v := range o.Docs {
		c.Docs[k] += v
	}
	for k, v := range o.Truncated {
		c.Truncated[k] += v
	}
	c.SplitDocs += o.SplitDocs
	c.DocLengths.Merge(o.DocLengths)
	c.BlocksRead += o.BlocksRead
	c.BlocksSkipped += o.BlocksSkipped
}

// selectFile reads one token cache and emits the pieces the plan takes from
// it, with their packing group. Documents on the file's drop list (duplicates)
// are left out; a block none of whose documents is taken is not decoded (the
// cache index gives every document's id and length without the tokens).
func selectFile(ctx context.Context, job mixJob, f cacheFile, emit func(g int, p shards.Piece) error) (selectCounts, error) {
	counts := newSelectCounts()
	sp, err := job.source(f.Source)
	if err != nil {
		return counts, err
	}
	dropped, err := readDrops(ctx, job.DropsDir, f.Index)
	if err != nil {
		return counts, err
	}
	c, err := shards.OpenCache(ctx, f.Path)
	if err != nil {
		return counts, err
	}
	defer c.Close()
	seed, seqLen := job.Plan.Seed, job.SeqLen
	entries := c.Docs()
	var takes [][]mixture.Take
	for b := range c.NumBlocks() {
		first, end := c.BlockDocs(b)
		takes = takes[:0]
		any := false
		for i := first; i < end; i++ {
			var t []mixture.Take
			if !dropped[i] {
				t = sp.Takes(seed, entries[i].ID, int64(entries[i].Tokens))
			}
			takes = append(takes, t)
			any = any || len(t) > 0
		}
		if !any {
			counts.BlocksSkipped++
			continue
		}
		counts.BlocksRead++
		docs, err := c.Block(b)
		if err != nil {
			return counts, fmt.Errorf("select %s: %w", f.Path, err)
		}
		for j, tokens := range docs {
			e := entries[first+j]
			for _, tk := range takes[j] {
				counts.Tokens[f.Source] += tk.Tokens
				counts.Docs[f.Source]++
				counts.Truncated[f.Source] += int64(e.Tokens) - tk.Tokens
				counts.DocLengths.Add(tk.Tokens)
				if tk.Tokens > int64(seqLen) {
					counts.SplitDocs++
				}
				g := job.group(f.Source, e.ID, tk.Rep)
				// Copy: the cache's block buffer must not stay alive for a
				// few sampled documents.
				own := append([]uint32(nil), tokens[:tk.Tokens]...)
				order := mixture.Key(seed, f.Source, e.ID, tk.Rep)
				for _, p := range shards.Split(f.Source, e.ID, tk.Rep, order, own, seqLen) {
					if err := emit(g, p); err != nil {
						return counts, fmt.Errorf("select %s: %w", f.Path, err)
					}
				}
			}
		}
	}
	return counts, nil
}
