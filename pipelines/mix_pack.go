package pipelines

// The pack step of mix (one group's pieces -> one shard) and the manifest,
// with every count checked against the plan.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"

	"longctx/mixture"
	"longctx/shards"
)

// groupResult is what packing one group produced.
type groupResult struct {
	Group int              `json:"group"`
	Shard shards.ShardInfo `json:"shard"`
	Pack  shards.PackStats `json:"pack"`
}

// packGroup packs one group's pieces and writes its shard. The pieces' order
// does not matter.
func packGroup(ctx context.Context, job mixJob, g int, pieces []shards.Piece) (groupResult, error) {
	seqs, st, err := shards.Pack(pieces, job.SeqLen)
	if err != nil {
		return groupResult{}, fmt.Errorf("group %d: %w", g, err)
	}
	shards.Shuffle(seqs, mixture.Hash(job.Plan.Seed, "shuffle", "", "", g))
	info, err := shards.WriteShard(ctx, job.Output, ShardName(g), seqs, job.SeqLen, job.ChunkSeqs)
	if err != nil {
		return groupResult{}, err
	}
	return groupResult{Group: g, Shard: info, Pack: st}, nil
}

// assembleManifest checks every count against the plan and builds the shard
// manifest.
func assembleManifest(opt MixOptions, idx *mixIndex, job mixJob, counts selectCounts, results []groupResult) (shards.Manifest, error) {
	specJSON, err := json.Marshal(opt.Spec)
	if err != nil {
		return shards.Manifest{}, err
	}
	sum := sha256.Sum256(specJSON)
	m := shards.Manifest{Format: shards.ManifestFormat, Version: shards.ShardVersion, Name: opt.Spec.Name,
		SeqLen: job.SeqLen, ChunkSeqs: job.ChunkSeqs, Seed: opt.Spec.Seed,
		MixtureConfigHash: hex.EncodeToString(sum[:]), TokenizerHash: idx.prepare.TokenizerHash, PrepareManifestHash: idx.prepareHash,
		SplitDocs: counts.SplitDocs, DocLengths: counts.DocLengths}
	var taken int64
	for _, sp := range job.Plan.Sources {
		got := counts.Tokens[sp.Source]
		if got != sp.Realized {
			return m, fmt.Errorf("source %s: select took %d tokens, the plan realizes %d", sp.Source, got, sp.Realized)
		}
		if tr := counts.Truncated[sp.Source]; tr != sp.Truncated {
			return m, fmt.Errorf("source %s: select truncated %d tokens, the plan %d", sp.Source, tr, sp.Truncated)
		}
		taken += got
		d := idx.dups[sp.Source]
		m.Sources = append(m.Sources, shards.SourceStats{Source: sp.Source, Weight: sp.Weight, TargetTokens: sp.Target,
			AvailableTokens: sp.Available, RealizedTokens: got, Docs: counts.Docs[sp.Source], FullPasses: sp.FullPasses,
			Repeats: sp.Repeats, TruncatedTokens: sp.Truncated, Warning: sp.Warning,
			DuplicateIDs: d.ID, DuplicateContent: d.Content, DroppedContent: d.ContentDropped})
	}
	for _, r := range results {
		m.Packing.Add(r.Pack)
		m.Shards = append(m.Shards, r.Shard)
	}
	if m.Packing.Real != taken {
		return m, fmt.Errorf("packed %d tokens, selected %d", m.Packing.Real, taken)
	}
	return m, nil
}
