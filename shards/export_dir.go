package shards

import (
	"bufio"
	"context"
	"fmt"
	"strings"

	"longctx/storage"
)

// ExportOptions choose the target format of Export.
type ExportOptions struct {
	Format    string // "nanotron" (.ds/.ds.index/.ds.metadata) or "megatron" (.bin/.idx)
	Tokenizer string // Hugging Face id or path written into .ds.metadata
	TokenSize int    // 2 (uint16; vocab <= 65,536) or 4
	EOS       int64  // appended after every document piece when >= 0
}

// Export writes every shard of dir as files of another trainer's format in
// out, one file set per shard (named after the shard), and returns the paths
// written. Every document piece becomes one document; padding is dropped.
func Export(ctx context.Context, dir, out string, opt ExportOptions) ([]string, error) {
	m, err := ReadManifest(ctx, dir)
	if err != nil {
		return nil, err
	}
	if opt.Format != "nanotron" && opt.Format != "megatron" {
		return nil, fmt.Errorf("export format %q: want nanotron or megatron", opt.Format)
	}
	if opt.Format == "nanotron" && opt.Tokenizer == "" {
		return nil, fmt.Errorf("nanotron export needs a tokenizer name (nanotron loads it with AutoTokenizer)")
	}
	var written []string
	for _, si := range m.Shards {
		base := strings.TrimSuffix(si.Path, ShardExt)
		files, err := exportShard(ctx, joinPath(dir, si.Path), joinPath(out, base), opt)
		if err != nil {
			return written, fmt.Errorf("export shard %s: %w", si.Path, err)
		}
		written = append(written, files...)
	}
	return written, nil
}

// sink is a buffered atomic output file.
type sink struct {
	w storage.Writer
	*bufio.Writer
}

func newSink(ctx context.Context, path string) (*sink, error) {
	w, err := storage.Create(ctx, path)
	if err != nil {
		return nil, err
	}
	return &sink{w, bufio.NewWriterSize(w, 1<<20)}, nil
}

func (s *sink) commit() error {
	if err := s.Flush(); err != nil {
		s.w.Abort()
		return err
	}
	return s.w.Close()
}

func exportShard(ctx context.Context, shardPath, base string, opt ExportOptions) ([]string, error) {
	f, size, err := openReaderAt(ctx, shardPath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sr, err := OpenShard(storage.Base(shardPath), f, size)
	if err != nil {
		return nil, err
	}
	var sinks []*sink
	abort := func() {
		for _, s := range sinks {
			s.w.Abort()
		}
	}
	open := func(path string) (*sink, error) {
		s, err := newSink(ctx, path)
		if err == nil {
			sinks = append(sinks, s)
		}
		return s, err
	}
	var write func([]uint32) error
	var finish func() ([]string, error)
	switch opt.Format {
	case "nanotron":
		ds, err := open(base + ".ds")
		if err != nil {
			return nil, err
		}
		idx, err := open(base + ".ds.index")
		if err != nil {
			abort()
			return nil, err
		}
		w, err := NewNanotronWriter(ds, idx, opt.TokenSize, opt.EOS)
		if err != nil {
			abort()
			return nil, err
		}
		write = w.WriteDoc
		finish = func() ([]string, error) {
			if err := ds.commit(); err != nil {
				return nil, err
			}
			if err := idx.commit(); err != nil {
				return nil, err
			}
			meta := NanotronMetadata(opt.Tokenizer, opt.TokenSize, w.Tokens)
			if err := storage.WriteFile(ctx, base+".ds.metadata", []byte(meta)); err != nil {
				return nil, err
			}
			return []string{base + ".ds", base + ".ds.index", base + ".ds.metadata"}, nil
		}
	case "megatron":
		bin, err := open(base + ".bin")
		if err != nil {
			return nil, err
		}
		w, err := NewMegatronWriter(bin, opt.TokenSize, opt.EOS)
		if err != nil {
			abort()
			return nil, err
		}
		write = w.WriteDoc
		finish = func() ([]string, error) {
			if err := bin.commit(); err != nil {
				return nil, err
			}
			if err := storage.WriteFile(ctx, base+".idx", w.Index()); err != nil {
				return nil, err
			}
			return []string{base + ".bin", base + ".idx"}, nil
		}
	}
	for c := range sr.Index {
		seqs, err := sr.ReadChunk(c)
		if err != nil {
			abort()
			return nil, err
		}
		for _, s := range seqs {
			for _, p := range s.Pieces() {
				if err := write(p); err != nil {
					abort()
					return nil, err
				}
			}
		}
	}
	files, err := finish()
	if err != nil {
		abort()
	}
	return files, err
}
