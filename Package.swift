// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "minik",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "minik", targets: ["minik"]),
        .executable(name: "minik-dns", targets: ["minik-dns"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.0.0"),
    ],
    targets: [
        // C layer: namespace syscalls on throwaway threads, clone()-based spawning,
        // netlink macro wrappers. Links libmnl.
        .target(
            name: "CMinik",
            linkerSettings: [.linkedLibrary("mnl"), .linkedLibrary("seccomp"), .linkedLibrary("pthread")]
        ),
        // Spec: the user's YAML (kind Cluster, minik settings, Pods, Deployments) decoded,
        // defaulted and validated into the internal model. Pure.
        // IPv4 addresses and prefixes: value types without Foundation, for every layer and
        // the DNS server.
        .target(name: "MinikAddressing"),
        .target(name: "MinikSpec", dependencies: ["Yams", "MinikAddressing"]),
        // Netlink: iproute2-named operations over libmnl. Knows nothing of clusters.
        .target(name: "MinikNetlink", dependencies: ["CMinik"]),
        // DNS: the message codec, the cluster zone and its answers, the Kubernetes DNS
        // schema. Pure Swift without Foundation (the DNS server links it statically).
        .target(name: "MinikDNS", dependencies: ["MinikAddressing"]),
        // Batched datagram I/O (recvmmsg/sendmmsg) and inotify for the DNS server.
        .target(name: "CDNSIO"),
        // The cluster DNS server, run as a pod; the Swift runtime is linked in so that its
        // image needs only the C library.
        .executableTarget(
            name: "minik-dns",
            dependencies: ["MinikDNS", "CDNSIO"],
            linkerSettings: [.unsafeFlags(["-static-stdlib"])]
        ),
        // Runtime: namespaces, sandboxes, the bridge CNI with host-local IPAM, the overlay,
        // the ordered build of a cluster and its teardown.
        .target(name: "MinikRuntime", dependencies: ["CMinik", "MinikSpec", "MinikNetlink", "MinikDNS"]),
        // Supervisor: owns a running cluster and serves the CLI over a local socket.
        .target(name: "MinikSupervisor", dependencies: ["MinikRuntime", "MinikSpec"]),
        .executableTarget(
            name: "minik",
            dependencies: [
                "MinikSupervisor", "MinikRuntime", "MinikSpec", "CMinik",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                "Yams",
            ]
        ),
        .testTarget(name: "MinikSpecTests", dependencies: ["MinikSpec", "MinikRuntime", "MinikDNS"]),
        .testTarget(
            name: "MinikIntegrationTests",
            dependencies: ["MinikRuntime", "MinikSpec", "MinikNetlink", "MinikSupervisor", "CMinik", "MinikDNS"]
        ),
    ],
    swiftLanguageModes: [.v6]
)
