package shards

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"sync"
)

// LoaderState is where a loader stands: the epoch and how many sequences of
// it were handed out. The trainer saves it with each checkpoint and resumes
// from it.
type LoaderState struct {
	Epoch    int64 `json:"epoch"`
	Position int64 `json:"position"`
}

// Loader hands out the sequences of a shard directory in a global
// deterministic order: each epoch is a permutation of all sequences of all
// shards, drawn from (seed, epoch). It reads ahead with a few goroutines so
// remote (gs://) shards do not stall the trainer.
type Loader struct {
	m      Manifest
	seed   uint64
	total  int64
	starts []int64 // first global index of each shard
	chunks *chunkCache

	state  LoaderState
	err    error // sticky: after a failed read, Next keeps failing
	ctx    context.Context
	cancel context.CancelFunc
	queue  chan *loadJob
	wg     sync.WaitGroup
}

// ReadAhead is how many sequences the loader prepares ahead of Next.
const ReadAhead = 32

const loadWorkers = 4

type loadJob struct {
	state LoaderState
	seq   Sequence
	err   error
	done  chan struct{}
}

// OpenLoader opens the shard directory dir (local or gs://) and positions the
// loader at state.
func OpenLoader(ctx context.Context, dir string, seed uint64, state LoaderState) (*Loader, error) {
	m, err := ReadManifest(ctx, dir)
	if err != nil {
		return nil, err
	}
	l := &Loader{m: m, seed: seed, state: state}
	for _, s := range m.Shards {
		l.starts = append(l.starts, l.total)
		l.total += s.Sequences
	}
	if l.total == 0 {
		return nil, fmt.Errorf("shards %s: no sequences", dir)
	}
	if l.total > math.MaxUint32 {
		return nil, fmt.Errorf("shards %s: %d sequences, more than the loader's 2^32", dir, l.total)
	}
	if state.Epoch < 0 || state.Position < 0 || state.Position > l.total {
		return nil, fmt.Errorf("loader state %+v out of range: %d sequences per epoch", state, l.total)
	}
	if state.Position == l.total {
		l.state = LoaderState{Epoch: state.Epoch + 1}
	}
	l.chunks = &chunkCache{ctx: ctx, dir: dir, m: m, readers: make([]*ShardReader, len(m.Shards)), closers: make([]readerAt, len(m.Shards)),
		cache: map[[2]int]*cachedChunk{}}
	l.ctx, l.cancel = context.WithCancel(ctx)
	l.queue = make(chan *loadJob, ReadAhead)
	jobs := make(chan *loadJob)
	for range loadWorkers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for j := range jobs {
				j.seq, j.err = l.load(j.state)
				close(j.done)
			}
		}()
	}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		defer close(jobs)
		defer close(l.queue)
		st := l.state
		for {
			j := &loadJob{state: st, done: make(chan struct{})}
			select {
			case l.queue <- j:
			case <-l.ctx.Done():
				return
			}
			select {
			case jobs <- j:
			case <-l.ctx.Done():
				return
			}
			st.Position++
			if st.Position == l.total {
				st = LoaderState{Epoch: st.Epoch + 1}
			}
		}
	}()
	return l, nil
}

// SeqLen is the length of every sequence.
func (l *Loader) SeqLen() int { return l.m.SeqLen }

// Len is the number of sequences in one epoch.
func (l *Loader) Len() int64 { return l.total }

// Manifest is the shard directory's manifest (lineage for the trainer's
// records).
func (l *Loader) Manifest() Manifest { return l.m }

// State is the position of the next sequence Next returns.
func (l *Loader) State() LoaderState { return l.state }

// Next returns the next sequence; after the last sequence of an epoch comes
// the first of the next epoch, in a new order. The sequence is the caller's.
func (l *Loader) Next() (Sequence, error) {
	if l.err != nil {
		return Sequence{}, l.err
	}
	j, ok := <-l.queue
	if !ok {
		return Sequence{}, fmt.Errorf("loader closed: %w", context.Cause(l.ctx))
	}
	select {
	case <-j.done:
	case <-l.ctx.Done():
		return Sequence{}, context.Cause(l.ctx)
	}
	if j.err != nil {
		// Never skip a sequence: the state stays at the one that failed.
		l.err = fmt.Errorf("loader at epoch %d position %d: %w", j.state.Epoch, j.state.Position, j.err)
		return Sequence{}, l.err
	}
	l.state = j.state
	l.state.Position++
	if l.state.Position == l.total {
		l.state = LoaderState{Epoch: l.state.Epoch + 1}
	}
	return j.seq, nil
}

// Close stops read-ahead and closes the shards.
func (l *Loader) Close() error {
	l.cancel()
	for range l.queue {
	}
	l.wg.Wait()
	return l.chunks.close()
}

// Permutation returns the order of epoch: out[p] is the global index of the
// sequence handed out at position p. Shards are numbered in manifest order
// and sequences within a shard in file order.
func Permutation(seed uint64, epoch int64, n int64) []uint32 {
	p := make([]uint32, n)
	for i := range p {
		p[i] = uint32(i)
	}
	r := rand.New(rand.NewPCG(seed, uint64(epoch)^0x9e3779b97f4a7c15))
	r.Shuffle(len(p), func(i, j int) { p[i], p[j] = p[j], p[i] })
	return p
}

func (l *Loader) load(st LoaderState) (Sequence, error) {
	g := l.chunks.perm(l.seed, st.Epoch, l.total)[st.Position]
	shard := sort.Search(len(l.starts), func(i int) bool { return l.starts[i] > int64(g) }) - 1
	i := int(int64(g) - l.starts[shard])
	cs := l.m.ChunkSeqs
	seqs, err := l.chunks.get(shard, i/cs)
	if err != nil {
		return Sequence{}, err
	}
	if i%cs >= len(seqs) {
		return Sequence{}, fmt.Errorf("shard %s chunk %d: sequence %d missing (chunk has %d)", l.m.Shards[shard].Path, i/cs, i%cs, len(seqs))
	}
	s := seqs[i%cs]
	return Sequence{Tokens: append([]uint32(nil), s.Tokens...), Starts: append([]uint32(nil), s.Starts...), Pad: s.Pad}, nil
}

// chunkCache opens shards lazily and keeps a few decoded chunks, so small
// sequences that share a chunk are decoded once per visit.
type chunkCache struct {
	ctx     context.Context
	dir     string
	m       Manifest
	mu      sync.Mutex
	readers []*ShardReader
	closers []readerAt
	cache   map[[2]int]*cachedChunk
	tick    int64
	// The permutations of the epochs being read (at most two are live
	// around an epoch boundary).
	epochs [2]int64
	perms  [2][]uint32
}

type cachedChunk struct {
	once sync.Once
	seqs []Sequence
	err  error
	used int64
}

const cachedChunks = 64

func (c *chunkCache) perm(seed uint64, epoch, n int64) []uint32 {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k := range c.perms {
		if c.perms[k] != nil && c.epochs[k] == epoch {
			return c.perms[k]
		}
	}
	// Replace the older epoch.
	k := 0
	if c.perms[0] != nil && (c.perms[1] == nil || c.epochs[1] < c.epochs[0]) {
		k = 1
	}
	c.perms[k], c.epochs[k] = Permutation(seed, epoch, n), epoch
	return c.perms[k]
}

func (c *chunkCache) reader(shard int) (*ShardReader, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if r := c.readers[shard]; r != nil {
		return r, nil
	}
	si := c.m.Shards[shard]
	f, size, err := openReaderAt(c.ctx, joinPath(c.dir, si.Path))
	if err != nil {
		return nil, fmt.Errorf("shard %s: %w", si.Path, err)
	}
	r, err := OpenShard(si.Path, f, size)
	if err != nil {
		f.Close()
		return nil, err
	}
	if r.SeqLen != c.m.SeqLen || r.Sequences != si.Sequences {
		f.Close()
		return nil, fmt.Errorf("shard %s: seq_len %d with %d sequences, manifest says %d with %d", si.Path, r.SeqLen, r.Sequences, c.m.SeqLen, si.Sequences)
	}
	c.readers[shard], c.closers[shard] = r, f
	return r, nil
}

func (c *chunkCache) get(shard, chunk int) ([]Sequence, error) {
	r, err := c.reader(shard)
	if err != nil {
		return nil, err
	}
	key := [2]int{shard, chunk}
	c.mu.Lock()
	e := c.cache[key]
	if e == nil {
		if len(c.cache) >= cachedChunks {
			var oldest [2]int
			var ot int64 = math.MaxInt64
			for k, v := range c.cache {
				if v.used < ot {
					oldest, ot = k, v.used
				}
			}
			delete(c.cache, oldest)
		}
		e = &cachedChunk{}
		c.cache[key] = e
	}
	c.tick++
	e.used = c.tick
	c.mu.Unlock()
	e.once.Do(func() { e.seqs, e.err = r.ReadChunk(chunk) })
	return e.seqs, e.err
}

func (c *chunkCache) close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var first error
	for i, f := range c.closers {
		if f != nil {
			if err := f.Close(); err != nil && first == nil {
				first = err
			}
			c.closers[i], c.readers[i] = nil, nil
		}
	}
	return first
}
