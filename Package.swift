// swift-tools-version: 6.2
import PackageDescription

let swift6: [SwiftSetting] = [.swiftLanguageMode(.v6)]

let package = Package(
    name: "os-migrate",
    products: [
        .executable(name: "os-migrate", targets: ["os-migrate"]),
        .executable(name: "os-migrate-agent", targets: ["os-migrate-agent"]),
        .library(name: "OpenStack", targets: ["OpenStack"]),
        .library(name: "Resources", targets: ["Resources"]),
        .library(name: "Engine", targets: ["Engine"]),
        .library(name: "DataPlane", targets: ["DataPlane"]),
        .library(name: "Workloads", targets: ["Workloads"]),
    ],
    dependencies: [
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "4.5.2"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        .package(url: "https://github.com/swiftlang/swift-subprocess.git", from: "1.0.2"),
    ],
    targets: [
        .target(
            name: "OpenStack",
            dependencies: [
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOFoundationCompat", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Yams", package: "Yams"),
                // Bulk data (image files) is hashed as it streams through.
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: swift6
        ),
        .target(
            name: "Resources",
            dependencies: ["OpenStack", .product(name: "Logging", package: "swift-log"), .product(name: "Yams", package: "Yams")],
            swiftSettings: swift6
        ),
        .target(
            name: "Engine",
            dependencies: [
                "OpenStack", "Resources",
                .product(name: "Yams", package: "Yams"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swift6
        ),
        .target(
            name: "DataPlane",
            dependencies: [.product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: swift6
        ),
        .target(
            name: "Workloads",
            dependencies: [
                "OpenStack", "Resources", "Engine", "DataPlane",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Subprocess", package: "swift-subprocess"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swift6
        ),
        .target(
            name: "DataPlaneCLI",
            dependencies: ["DataPlane", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            swiftSettings: swift6
        ),
        .target(name: "AgentCompat"),
        .executableTarget(
            name: "os-migrate-agent",
            dependencies: ["DataPlaneCLI", "AgentCompat", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            swiftSettings: swift6
        ),
        .executableTarget(
            name: "os-migrate",
            dependencies: [
                "OpenStack", "Resources", "Engine", "DataPlane", "DataPlaneCLI", "Workloads",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swift6
        ),
        .executableTarget(
            name: "network-bench",
            dependencies: ["OpenStack", "TestSupport"],
            path: "bench/network",
            exclude: ["RESULTS.md"],
            swiftSettings: swift6
        ),
        .target(
            name: "TestSupport",
            dependencies: [
                "OpenStack",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Subprocess", package: "swift-subprocess"),
            ],
            path: "Tests/TestSupport",
            swiftSettings: swift6
        ),
        .testTarget(
            name: "OpenStackTests",
            dependencies: ["OpenStack", "TestSupport"],
            resources: [.copy("Fixtures")],
            swiftSettings: swift6
        ),
        .testTarget(
            name: "ResourcesTests",
            dependencies: ["Resources", "TestSupport"],
            swiftSettings: swift6
        ),
        .testTarget(
            name: "EngineTests",
            dependencies: ["Engine", "Resources", "OpenStack", "TestSupport"],
            swiftSettings: swift6
        ),
        .testTarget(
            name: "DataPlaneTests",
            dependencies: ["DataPlane", "TestSupport"],
            swiftSettings: swift6
        ),
        .testTarget(
            name: "WorkloadsTests",
            dependencies: ["Workloads", "TestSupport"],
            swiftSettings: swift6
        ),
        .testTarget(
            name: "HostTests",
            dependencies: ["DataPlane", "TestSupport"],
            swiftSettings: swift6
        ),
        .testTarget(
            name: "LabTests",
            dependencies: ["OpenStack", "Resources", "Engine", "Workloads", "DataPlane", "TestSupport",
                           .product(name: "Subprocess", package: "swift-subprocess")],
            swiftSettings: swift6
        ),
    ]
)
