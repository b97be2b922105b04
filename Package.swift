// swift-tools-version:6.1
import PackageDescription

// Dependencies point one way, down:
//   tokenledger -> Worker -> JobWire -> LedgerModel;  Worker -> Ledger -> LedgerModel, CSQLiteTuning;
//   Worker -> Redis -> CHiredis, Crypto (SHA-1 of scripts);  tokenledger -> OperatorHTTP -> Ledger, JobWire, Redis.
// LedgerModel holds the typed commands, outcomes, refusals, changes and events every other
// target shares; JobWire owns every byte on the wire (jobs in; replies, invalidations, events,
// dead letters out); Ledger applies commands and stores outcomes in its own encoding.
let package = Package(
    name: "TokenLedger",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "tokenledger", targets: ["tokenledger"]),
        .executable(name: "tokenledger-bench", targets: ["tokenledger-bench"]),
        .library(name: "Redis", targets: ["Redis"]),
        .library(name: "Ledger", targets: ["Ledger"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/swhitty/FlyingFox", from: "0.27.1"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
    ],
    targets: [
        .systemLibrary(
            name: "CHiredis",
            pkgConfig: "hiredis",
            providers: [.apt(["libhiredis-dev"])]
        ),
        .target(
            name: "Redis",
            dependencies: ["CHiredis", .product(name: "Crypto", package: "swift-crypto")]
        ),
        .systemLibrary(name: "CSQLiteTuning"),
        .target(name: "LedgerModel"),
        .target(
            name: "Ledger",
            dependencies: [
                "LedgerModel", "CSQLiteTuning",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "GRDBSQLite", package: "GRDB.swift"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        .target(
            name: "JobWire",
            dependencies: ["LedgerModel"]
        ),
        .target(
            name: "Worker",
            dependencies: [
                "JobWire", "Ledger", "LedgerModel", "Redis",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .target(
            name: "OperatorHTTP",
            dependencies: [
                "Ledger", "LedgerModel", "JobWire", "Redis",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "FlyingFox", package: "FlyingFox"),
                .product(name: "FlyingSocks", package: "FlyingFox"),
            ]
        ),
        .executableTarget(
            name: "tokenledger",
            dependencies: [
                "Worker", "OperatorHTTP", "JobWire", "Ledger", "LedgerModel", "Redis",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .executableTarget(
            name: "tokenledger-bench",
            dependencies: [
                "Ledger", "LedgerModel", "Redis", "JobWire",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ]
        ),
        .target(name: "TestSupport", dependencies: ["Redis"], path: "Tests/TestSupport"),
        .testTarget(name: "RedisTests", dependencies: ["Redis", "TestSupport"]),
        // LedgerTests reads the ledger's tables with GRDB directly, to check what the API hides, and
        // checks replies through JobWire's encoder (the ledger itself writes no reply).
        .testTarget(name: "LedgerTests", dependencies: [
            "Ledger", "LedgerModel", "JobWire", .product(name: "GRDB", package: "GRDB.swift"),
            .product(name: "GRDBSQLite", package: "GRDB.swift"),
        ]),
        .testTarget(name: "JobWireTests", dependencies: ["JobWire", "LedgerModel", "TestSupport"]),
        .testTarget(name: "WorkerTests", dependencies: [
            "Worker", "JobWire", "Ledger", "LedgerModel", "Redis", "TestSupport", "OperatorHTTP",
            .product(name: "Logging", package: "swift-log"),
        ]),
    ],
    swiftLanguageModes: [.v6]
)
