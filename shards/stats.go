package shards

import (
	"context"
	"fmt"
	"strings"
)

// Stats summarizes a shard directory by reading every sequence.
type Stats struct {
	Shards          int        `json:"shards"`
	Sequences       int64      `json:"sequences"`
	SeqLen          int        `json:"seq_len"`
	Real            int64      `json:"real_tokens"`
	Pad             int64      `json:"pad_tokens"`
	Fill            float64    `json:"fill"`
	PaddedSequences int64      `json:"padded_sequences"`
	MaxPad          int64      `json:"max_pad"`
	Pieces          int64      `json:"pieces"`
	PiecesPerSeq    LengthHist `json:"pieces_per_sequence"` // power-of-two buckets
	PieceLengths    LengthHist `json:"piece_lengths"`
}

// ComputeStats reads every shard of dir.
func ComputeStats(ctx context.Context, dir string) (Stats, error) {
	m, err := ReadManifest(ctx, dir)
	if err != nil {
		return Stats{}, err
	}
	st := Stats{SeqLen: m.SeqLen}
	for _, si := range m.Shards {
		f, size, err := openReaderAt(ctx, joinPath(dir, si.Path))
		if err != nil {
			return st, fmt.Errorf("shard %s: %w", si.Path, err)
		}
		sr, err := OpenShard(si.Path, f, size)
		if err != nil {
			f.Close()
			return st, err
		}
		for c := range sr.Index {
			seqs, err := sr.ReadChunk(c)
			if err != nil {
				f.Close()
				return st, err
			}
			for _, s := range seqs {
				st.Sequences++
				st.Real += int64(m.SeqLen) - int64(s.Pad)
				st.Pad += int64(s.Pad)
				if s.Pad > 0 {
					st.PaddedSequences++
					st.MaxPad = max(st.MaxPad, int64(s.Pad))
				}
				st.Pieces += int64(len(s.Starts))
				st.PiecesPerSeq.Add(int64(len(s.Starts)))
				for _, p := range s.Pieces() {
					st.PieceLengths.Add(int64(len(p)))
				}
			}
		}
		f.Close()
		st.Shards++
	}
	if st.Real+st.Pad > 0 {
		st.Fill = float64(st.Real) / float64(st.Real+st.Pad)
	}
	return st, nil
}

// Markdown renders the statistics for people.
func (st Stats) Markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d shards, %d sequences of %d tokens\n", st.Shards, st.Sequences, st.SeqLen)
	fmt.Fprintf(&b, "fill %.4f%%: %d real + %d pad tokens; %d sequences padded (max %d)\n", 100*st.Fill, st.Real, st.Pad, st.PaddedSequences, st.MaxPad)
	fmt.Fprintf(&b, "%d document pieces (%.2f per sequence)\n\n", st.Pieces, float64(st.Pieces)/float64(max(1, st.Sequences)))
	b.WriteString("Pieces per sequence:\n\n")
	b.WriteString(st.PiecesPerSeq.Markdown("pieces"))
	b.WriteString("\nPiece lengths (tokens):\n\n")
	b.WriteString(st.PieceLengths.Markdown("tokens"))
	return b.String()
}

// Markdown renders the non-empty buckets as a table.
func (h LengthHist) Markdown(unit string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "| %s | count | tokens |\n|---|---:|---:|\n", unit)
	for k := range h.Counts {
		if h.Counts[k] == 0 {
			continue
		}
		lo, hi := int64(1)<<k, int64(1)<<(k+1)-1
		if k == 0 {
			lo = 0
		}
		fmt.Fprintf(&b, "| %d–%d | %d | %d |\n", lo, hi, h.Counts[k], h.Tokens[k])
	}
	return b.String()
}
