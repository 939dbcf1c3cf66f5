# System dependencies (Debian packages; on the GPU machine, the extracted .deb folder).
find_package(absl CONFIG REQUIRED)
find_package(nlohmann_json 3 REQUIRED)
find_package(GTest REQUIRED)
find_package(Threads REQUIRED)

# Needed only by server/ and telemetry/, which are not built yet: optional for now.
find_package(Protobuf QUIET)
find_package(gRPC CONFIG QUIET)
find_package(prometheus-cpp CONFIG QUIET)
