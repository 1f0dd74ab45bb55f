// Package pipelines holds the data-preparation stages of longctx: readers for
// each source's real file layout, the `prepare` pipeline (files -> token
// caches + statistics) and its Beam wrapper.
//
// The core is pure Go over plain types: a reader turns one file into
// Documents and Malformed records; PrepareFile runs one file through a chain
// of steps (steps.go: read, sanitise, tokenize, length filter, write, each
// with its own counts) into one token cache and its statistics. Beam only
// fans files out and combines statistics.
//
// Output of prepare, under the configured output directory (local or gs://):
//
//	manifest.json                       shards.PrepareManifest: per source its caches, inputs
//	                                    (path, size, etag), stats; tokenizer and config hashes
//	report.md                           read = written + dropped by reason, per source and file;
//	                                    length histograms
//	dead_letters.jsonl                  every dropped record (Malformed as JSON), all files: one
//	                                    line per malformed record; filter drops (too_short,
//	                                    too_long) one line per file and reason with a sample of ids
//	debug.log                           the runner's full error when a run failed
//	<source>/<base>-<hash>.tokcache     token cache of one input file (shards format)
//	<source>/<base>-<hash>.tokcache.json  its FileResult; present = cache complete; used to skip
//	                                    the file when input size/etag, tokenizer and settings match
//	dead_letters/<source>/<base>-<hash>.jsonl  the file's dropped records (only if any)
//
// <hash> is 12 hex digits of sha256(input path), so names are stable and a
// retried unit of work overwrites its own outputs.
package pipelines

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
)

// Document is what every reader yields, whatever the source's schema.
type Document struct {
	ID       string            // stable id: the source's own, or derived from stable fields
	Source   string            // source name from the config (e.g. "books")
	Text     string            // raw text, possibly invalid UTF-8 (prepare sanitises it)
	Metadata map[string]string // source-specific fields, rendered as strings
	File     string            // input file path
	Unit     string            // "line" (1-based, JSONL) or "row" (0-based, parquet)
	Record   int64             // line or row number inside File
}

// Reasons a record is dropped. Readers produce the malformed-input reasons;
// prepare adds the filter reasons.
const (
	ReasonBadJSON         = "bad_json"         // line is not a JSON object
	ReasonMissingText     = "missing_text"     // no text field, or null
	ReasonWrongType       = "wrong_type"       // a field has the wrong JSON/parquet type
	ReasonEmptyText       = "empty_text"       // text is empty or only whitespace
	ReasonCorruptStream   = "corrupt_stream"   // gzip/zstd data is corrupt
	ReasonTruncatedStream = "truncated_stream" // gzip/zstd stream ends early
	ReasonMissingColumn   = "missing_column"   // parquet file lacks the text column
	ReasonCorruptParquet  = "corrupt_parquet"  // parquet pages cannot be decoded
	ReasonTooShort        = "too_short"        // fewer tokens than the source's min_tokens
	ReasonTooLong         = "too_long"         // more tokens than the source's max_tokens
	ReasonUnreadableFile  = "unreadable_file"  // file could not be opened (--skip-unreadable)
)

// Malformed is one dead letter: a record (or, for file-level faults, a run
// of records) that could not become a document, with where and why.
type Malformed struct {
	Source  string `json:"source"`
	File    string `json:"file"`
	Unit    string `json:"unit"`             // "line", "row" or "file"
	Record  int64  `json:"record"`           // line (1-based) or row (0-based); 0 for unit "file"
	Records int64  `json:"records"`          // records this entry stands for (1, or a file's rows)
	Reason  string `json:"reason"`           // one of the Reason constants
	Detail  string `json:"detail"`           // what exactly was wrong
	ID      string `json:"id,omitempty"`     // document id when known
	Tokens  int    `json:"tokens,omitempty"` // for filter drops: tokens of the dropped documents
	// Filter drops are one letter per file and reason: the limit crossed
	// and the ids of the first few documents.
	Limit  int      `json:"limit,omitempty"`
	Sample []string `json:"sample,omitempty"`
}

func (m Malformed) String() string {
	return fmt.Sprintf("%s %s %d: %s: %s", m.File, m.Unit, m.Record, m.Reason, m.Detail)
}

// Emit receives a reader's output. Returning an error stops the read (used
// for cancellation and write failures), never for bad records. Readers
// also return how many records (lines, rows) they saw, counted on their
// own, so prepare can check that every record came out as a document or a
// dead letter.
type Emit struct {
	Doc func(Document) error
	Bad func(Malformed) error
}

// derivedID is a stable id for documents whose source has none: the hex
// SHA-256 of the given stable fields joined by NUL, truncated to 128 bits.
func derivedID(fields ...string) string {
	h := sha256.New()
	for i, f := range fields {
		if i > 0 {
			h.Write([]byte{0})
		}
		h.Write([]byte(f))
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

func blank(s string) bool { return strings.TrimSpace(s) == "" }
