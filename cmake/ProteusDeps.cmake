# System dependencies (Debian packages; on the GPU machine, the extracted .deb folder).
find_package(absl CONFIG REQUIRED)
find_package(nlohmann_json 3 REQUIRED)
find_package(GTest REQUIRED)
find_package(Threads REQUIRED)

# The wire API and the server (proto/, server/, client/).
find_package(Protobuf REQUIRED)
find_package(gRPC CONFIG REQUIRED)
# telemetry/: the registry and the HTTP exposer.
find_package(prometheus-cpp CONFIG REQUIRED)
