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
        // The Kubernetes API server: HTTP/1.1 (NIOHTTP1), TLS with client certificates
        // (swift-nio-ssl), the cluster's CA and certificates (swift-certificates over
        // swift-crypto). No crypto of our own.
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-certificates", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-crypto", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/apple/swift-asn1", from: "1.7.4"),
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
        // libnl-route-3, the reader of kernel state (cache dumps).
        .systemLibrary(name: "CNLRoute", pkgConfig: "libnl-route-3.0", providers: [.apt(["libnl-route-3-dev"])]),
        // Netlink: iproute2-named operations over libmnl (the writer), kernel state read
        // through libnl-route-3's caches (KernelView). Knows nothing of clusters.
        .target(name: "MinikNetlink", dependencies: ["CMinik", "CNLRoute"]),
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
        // Packet sockets for `minik capture` and capture filters compiled by libpcap.
        .target(name: "CCapture", linkerSettings: [.linkedLibrary("pcap")]),
        // Runtime: namespaces, sandboxes, the bridge CNI with host-local IPAM, the overlay,
        // the ordered build of a cluster and its teardown.
        .target(name: "MinikRuntime", dependencies: ["CMinik", "CCapture", "MinikSpec", "MinikNetlink", "MinikDNS"]),
        // Kubernetes API objects as JSON values, the object store with its watch window,
        // selectors, Tables (the apiserver's printers), discovery and OpenAPI documents,
        // and the request router. Pure: no sockets, no kernel.
        .target(name: "MinikAPI", dependencies: ["MinikSpec", "MinikRuntime", "Yams"]),
        // SPDY/3 header blocks: zlib with the protocol's dictionary (kubectl's port-forward
        // and older exec clients speak SPDY/3.1). Links libz.
        .target(name: "CSPDYZlib", linkerSettings: [.linkedLibrary("z")]),
        // The API's transport: HTTPS on loopback with the cluster's CA and client
        // certificates, bearer tokens for service accounts, chunked watches; the
        // kubeconfig a user's kubectl reads.
        .target(
            name: "MinikAPIServer",
            dependencies: [
                "MinikAPI", "MinikSpec", "MinikRuntime", "Yams", "CSPDYZlib",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
            ]
        ),
        // Supervisor: owns a running cluster, serves the Kubernetes API and the CLI's
        // control socket. Glue between the modules above, built without optimization:
        // Swift 6.3's loop-invariant code motion ran for over 15 minutes on it in release
        // builds, for code that runs once per request.
        .target(
            name: "MinikSupervisor",
            dependencies: ["MinikRuntime", "MinikSpec", "MinikAPI", "MinikAPIServer"],
            swiftSettings: [.unsafeFlags(["-Onone"])]
        ),
        .executableTarget(
            name: "minik",
            dependencies: [
                "MinikSupervisor", "MinikRuntime", "MinikSpec", "CMinik", "MinikAPI", "MinikAPIServer",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                "Yams",
            ]
        ),
        .testTarget(name: "MinikSpecTests", dependencies: ["MinikSpec", "MinikRuntime", "MinikNetlink", "MinikDNS", "MinikAPI", "MinikAPIServer"]),
        .testTarget(
            name: "MinikIntegrationTests",
            dependencies: ["MinikRuntime", "MinikSpec", "MinikNetlink", "MinikSupervisor", "CMinik", "MinikDNS", "MinikAPI", "MinikAPIServer"]
        ),
    ],
    swiftLanguageModes: [.v6]
)
