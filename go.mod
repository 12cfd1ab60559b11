module github.com/orproxy/orproxy

go 1.26.0

require (
	github.com/gofrs/flock v0.13.1
	github.com/stretchr/testify v1.12.1
	go.uber.org/goleak v1.3.0
	go.uber.org/zap v1.28.0
	go.yaml.in/yaml/v3 v3.0.6
	golang.org/x/sys v0.49.0
	golang.org/x/term v0.47.0
)

require go.uber.org/multierr v1.10.0 // indirect
