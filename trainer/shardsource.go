package trainer

import (
	"context"
	"encoding/json"
	"fmt"

	"longctx/shards"
)

// ShardSource feeds the trainer from a shard directory (local or gs://)
// through the shards loader: a global seeded shuffle, resumable from the
// (epoch, position) saved in checkpoints.
type ShardSource struct {
	ctx    context.Context
	dir    string
	seed   uint64
	loader *shards.Loader
}

type shardSourceState struct {
	Dir      string             `json:"dir"`
	Seed     uint64             `json:"seed"`
	Sequence int64              `json:"sequences"` // sequences in the directory, to refuse a different one
	Loader   shards.LoaderState `json:"loader"`
}

// OpenShardSource opens dir's shards for sequences of seqLen tokens.
func OpenShardSource(ctx context.Context, dir string, seed uint64, seqLen int) (*ShardSource, error) {
	l, err := shards.OpenLoader(ctx, dir, seed, shards.LoaderState{})
	if err != nil {
		return nil, err
	}
	if l.SeqLen() != seqLen {
		l.Close()
		return nil, fmt.Errorf("shards %s hold sequences of %d tokens, training wants %d", dir, l.SeqLen(), seqLen)
	}
	return &ShardSource{ctx: ctx, dir: dir, seed: seed, loader: l}, nil
}

// Next returns the next sequence of the shuffled order.
func (s *ShardSource) Next() (shards.Sequence, error) { return s.loader.Next() }

// Len is the number of sequences in one epoch.
func (s *ShardSource) Len() int64 { return s.loader.Len() }

// Manifest is the shard directory's manifest, for lineage.
func (s *ShardSource) Manifest() shards.Manifest { return s.loader.Manifest() }

// State records the loader position.
func (s *ShardSource) State() ([]byte, error) {
	return json.Marshal(shardSourceState{Dir: s.dir, Seed: s.seed, Sequence: s.loader.Len(), Loader: s.loader.State()})
}

// Restore reopens the loader at a saved position.
func (s *ShardSource) Restore(state []byte) error {
	var st shardSourceState
	if err := json.Unmarshal(state, &st); err != nil {
		return fmt.Errorf("shard source state: %v", err)
	}
	if st.Seed != s.seed || st.Sequence != s.loader.Len() {
		return fmt.Errorf("shard source state is for %d sequences with seed %d; %s has %d with seed %d",
			st.Sequence, st.Seed, s.dir, s.loader.Len(), s.seed)
	}
	l, err := shards.OpenLoader(s.ctx, s.dir, s.seed, st.Loader)
	if err != nil {
		return err
	}
	s.loader.Close()
	s.loader = l
	return nil
}

// Close stops the loader's read-ahead.
func (s *ShardSource) Close() error { return s.loader.Close() }

// OpenData opens the training data named by cfg.Data: a shard directory
// written by `longctx mix` (local or gs://; sequences shuffled by cfg.Seed) or
// a flat little-endian uint32 token file (consecutive windows, documents split
// at eos). The returned close function releases the source.
func OpenData(ctx context.Context, cfg TrainConfig, eos uint32) (SequenceSource, func(), error) {
	if _, err := shards.ReadManifest(ctx, cfg.Data); err == nil {
		s, err := OpenShardSource(ctx, cfg.Data, cfg.Seed, cfg.SeqLen)
		if err != nil {
			return nil, nil, err
		}
		return s, func() { s.Close() }, nil
	}
	tokens, err := ReadTokenFile(cfg.Data)
	if err != nil {
		return nil, nil, fmt.Errorf("%s is neither a shard directory nor a token file: %w", cfg.Data, err)
	}
	s, err := NewTokenStream(tokens, cfg.SeqLen, eos)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", cfg.Data, err)
	}
	return s, func() {}, nil
}
