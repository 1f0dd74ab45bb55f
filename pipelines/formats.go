package pipelines

import (
	"fmt"
	"sort"
	"strings"
)

// Format is one source's file layout: which container it uses and which
// fields hold the text, the id and the metadata. Source-specific schema
// knowledge lives only here.
type Format struct {
	Name    string
	Doc     string       // one-line description for --help and reports
	JSON    *jsonSpec    // JSON Lines (compression from the file extension)
	Parquet *parquetSpec // parquet, read row group by row group
}

// jsonSpec names fields of a JSON Lines record. Dotted names reach into
// nested objects ("metadata.WARC-Record-ID").
type jsonSpec struct {
	text   string
	ids    []string // first present, non-null field is the id
	meta   []string // copied into Document.Metadata
	derive []string // fields hashed into an id when no id field is present
}

// parquetSpec names columns of a flat parquet schema.
type parquetSpec struct {
	text   string
	ids    []string
	meta   []string
	derive []string
}

// Formats are the source layouts longctx reads (see
// shared/reference/data-sources.md for the real schemas).
var Formats = map[string]Format{
	"dolma": {
		Name: "dolma",
		Doc:  "Dolma (books): gzip JSON Lines *.json.gz with id, text, source, added, created, metadata",
		JSON: &jsonSpec{text: "text", ids: []string{"id"}, meta: []string{"source", "added", "created", "metadata"}},
	},
	"stack": {
		Name: "stack",
		Doc:  "The Stack v1 dedup / StarCoderData: parquet with content, hexsha|id, lang, ext, size, max_stars_repo_*",
		Parquet: &parquetSpec{text: "content", ids: []string{"hexsha", "id"},
			meta:   []string{"lang", "ext", "size", "max_stars_repo_name", "max_stars_repo_path", "max_stars_count"},
			derive: []string{"max_stars_repo_name", "max_stars_repo_path"}},
	},
	"fineweb-edu": {
		Name: "fineweb-edu",
		Doc:  "FineWeb-Edu: parquet with text, id, dump, url, date, language, language_score, token_count, score, int_score",
		Parquet: &parquetSpec{text: "text", ids: []string{"id"},
			meta:   []string{"url", "dump", "date", "file_path", "language", "language_score", "token_count", "score", "int_score"},
			derive: []string{"url"}},
	},
	"dclm": {
		Name: "dclm",
		Doc:  "DCLM-baseline: zstd JSON Lines *.jsonl.zstd with text, url, metadata{WARC-Record-ID, WARC-Date}",
		JSON: &jsonSpec{text: "text", ids: []string{"id", "metadata.WARC-Record-ID"},
			meta: []string{"url", "metadata.WARC-Date", "metadata.WARC-Record-ID"}, derive: []string{"url"}},
	},
	"finemath": {
		Name: "finemath",
		Doc:  "FineMath 3+/4+: parquet with text, url, warc_filename, warc_record_offset, metadata (JSON string), score; id derived from url+warc_filename+warc_record_offset",
		Parquet: &parquetSpec{text: "text",
			meta:   []string{"url", "warc_filename", "warc_record_offset", "crawl", "language", "score", "int_score", "token_count", "metadata"},
			derive: []string{"url", "warc_filename", "warc_record_offset"}},
	},
}

// LookupFormat returns the named format or an error listing the known ones.
func LookupFormat(name string) (Format, error) {
	f, ok := Formats[name]
	if !ok {
		names := make([]string, 0, len(Formats))
		for n := range Formats {
			names = append(names, n)
		}
		sort.Strings(names)
		return Format{}, fmt.Errorf("unknown format %q (known: %s)", name, strings.Join(names, ", "))
	}
	return f, nil
}
