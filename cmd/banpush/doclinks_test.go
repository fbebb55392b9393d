package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// The manual is README.md and docs/*.md. These tests hold its links, and
// the hints in the code and in contrib/ that point into it, to anchors
// that exist: a heading moved or renamed must fail a test, not send an
// administrator to nothing.

var (
	mdLinkRE  = regexp.MustCompile(`\]\(([^)\s]+)\)`)
	mdIDRE    = regexp.MustCompile(`<a id="([a-z0-9-]+)"></a>`)
	docRefRE  = regexp.MustCompile(`docs/([a-z-]+\.md)(#[a-z0-9-]+)?`)
	headingRE = regexp.MustCompile(`^#{1,6} (.*)$`)
	slugDrop  = regexp.MustCompile(`[^\p{L}\p{N} _-]`)
)

// anchors lists the anchors of a markdown file: its headings, as GitHub
// makes them (a repeated heading gets -1, -2...), and explicit ids.
func anchors(t *testing.T, path string) map[string]bool {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	seen := map[string]int{}
	code := false
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "```") {
			code = !code
			continue
		}
		if code {
			continue
		}
		if m := headingRE.FindStringSubmatch(l); m != nil {
			s := strings.ReplaceAll(slugDrop.ReplaceAllString(strings.ToLower(strings.TrimSpace(m[1])), ""), " ", "-")
			if n := seen[s]; n > 0 {
				out[s+"-"+strconv.Itoa(n)] = true
			} else {
				out[s] = true
			}
			seen[s]++
		}
		for _, m := range mdIDRE.FindAllStringSubmatch(l, -1) {
			out[m[1]] = true
		}
	}
	return out
}

// TestManualLinks: every relative link of README.md and docs/*.md names a
// file of the checkout, and every anchor one of that file's.
func TestManualLinks(t *testing.T) {
	repo := filepath.Join("..", "..")
	pages, _ := filepath.Glob(filepath.Join(repo, "docs", "*.md"))
	pages = append(pages, filepath.Join(repo, "README.md"))
	if len(pages) < 5 {
		t.Fatalf("found %v: the manual is README.md and docs/*.md", pages)
	}
	n := 0
	for _, page := range pages {
		b, err := os.ReadFile(page)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range mdLinkRE.FindAllStringSubmatch(string(b), -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			n++
			file, anchor, _ := strings.Cut(target, "#")
			path := page
			if file != "" {
				path = filepath.Join(filepath.Dir(page), file)
				if _, err := os.Stat(path); err != nil {
					t.Errorf("%s: link to %s: no such file", page, target)
					continue
				}
			}
			if anchor != "" && !anchors(t, path)[anchor] {
				t.Errorf("%s: link to %s: %s has no such anchor", page, target, path)
			}
		}
	}
	if n < 20 {
		t.Errorf("checked %d links: the test no longer finds them", n)
	}
}

// TestHintsPointAtTheManual: every docs/PAGE.md#ANCHOR that the code
// (hints, help) or contrib/ (scripts, configuration) names exists.
func TestHintsPointAtTheManual(t *testing.T) {
	repo := filepath.Join("..", "..")
	n := 0
	for _, top := range []string{"cmd", "sshpush", "inventory", "contrib"} {
		filepath.WalkDir(filepath.Join(repo, top), func(path string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() || strings.HasSuffix(path, "_test.go") || strings.Contains(path, "testdata") {
				return nil
			}
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(string(b), "(README,") {
				t.Errorf("%s points at the README by section name: point at docs/PAGE.md#ANCHOR", path)
			}
			for _, m := range docRefRE.FindAllStringSubmatch(string(b), -1) {
				n++
				page := filepath.Join(repo, "docs", m[1])
				if _, err := os.Stat(page); err != nil {
					t.Errorf("%s names docs/%s: no such page", path, m[1])
					continue
				}
				if m[2] != "" && !anchors(t, page)[m[2][1:]] {
					t.Errorf("%s names docs/%s%s: no such anchor", path, m[1], m[2])
				}
			}
			return nil
		})
	}
	if n < 10 {
		t.Errorf("found %d references to docs/: the test no longer finds them", n)
	}
}
