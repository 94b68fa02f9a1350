"""Operations beside the bootstrap pipeline: status and the rotation test."""
