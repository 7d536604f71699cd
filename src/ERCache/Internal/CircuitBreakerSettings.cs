namespace ERCache.Internal;

/// <summary>A validated, immutable snapshot of <see cref="CircuitBreakerOptions"/>.</summary>
internal readonly record struct CircuitBreakerSettings(
    bool Enabled, double FailureRatio, int MinimumThroughput, TimeSpan SamplingDuration, TimeSpan BreakDuration)
{
    public static CircuitBreakerSettings From(CircuitBreakerOptions options) =>
        new(options.Enabled, options.FailureRatio, options.MinimumThroughput, options.SamplingDuration, options.BreakDuration);
}
