module github.com/orproxy/orproxy

go 1.26.0

require (
	github.com/kardianos/service v1.3.0
	github.com/stretchr/testify v1.12.1
	go.uber.org/zap v1.28.0
	go.yaml.in/yaml/v3 v3.0.6
)

require (
	go.uber.org/multierr v1.10.0 // indirect
	golang.org/x/sys v0.34.0 // indirect
)
