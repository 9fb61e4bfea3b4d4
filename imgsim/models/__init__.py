"""From pixels to vectors: backbones, their runtimes (OpenVINO, TensorFlow), pooling, shared passes
and the reducers (PCA, autoencoder) that shrink the vectors."""
