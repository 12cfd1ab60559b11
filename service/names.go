package service

const (
	// serviceName is the systemd unit (orproxy.service) and the Windows
	// service name.
	serviceName = "orproxy"
	// launchdLabel is the launchd job label. kardianos/service uses
	// Config.Name both as the label and as the plist file name
	// (~/Library/LaunchAgents/<Name>.plist) and asks `launchctl list <Name>`
	// for the status, so on macOS Name must be this label and the plist we
	// hand it must carry the same one. Labels are reverse-DNS by convention;
	// io.github.orproxy is the namespace the project's GitHub organisation
	// gives it.
	launchdLabel = "io.github.orproxy.orproxy"
)
