module github.com/banpush/banpush

go 1.26.8

require (
	github.com/alecthomas/kong v1.17.0
	github.com/kevinburke/ssh_config v1.6.0
	github.com/rogpeppe/go-internal v1.16.0
	github.com/skeema/knownhosts v1.3.3
	golang.org/x/crypto v0.59.0
	golang.org/x/sys v0.50.0
)

require golang.org/x/tools v0.26.0 // indirect
