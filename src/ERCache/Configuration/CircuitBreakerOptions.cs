namespace ERCache;

/// <summary>
/// Stops calling a failing model for a while (<c>ERCache:Models:&lt;name&gt;:Inference:CircuitBreaker</c>): when
/// at least <see cref="FailureRatio"/> of the delegate calls in <see cref="SamplingDuration"/> fail (and there were
/// at least <see cref="MinimumThroughput"/>), the circuit opens for <see cref="BreakDuration"/>; requests are then
/// answered from the failover tier or as a fallback (<see cref="InferenceFailureCause.CircuitOpen"/>). After the
/// break one probe call is let through: success closes the circuit, failure opens it again.
/// </summary>
/// <remarks>A model's delegate call fails when it throws, passes <see cref="InferenceOptions.HardTimeout"/>, or
/// returns no usable vector and at least one invalid one (<see cref="InferenceFailureCause.InvalidVector"/>: a
/// tower deployed broken is not called on and on); a call that fails some users with
/// <see cref="Inference.InferenceBatch.Fail"/>, or returns one usable vector, is working.</remarks>
public sealed class CircuitBreakerOptions
{
    /// <summary>Whether the breaker is on. Default <see langword="true"/>.</summary>
    public bool Enabled { get; set; } = true;

    /// <summary>Share of failed delegate calls that opens the circuit, in (0, 1]. Default 0.5.</summary>
    public double FailureRatio { get; set; } = 0.5;

    /// <summary>Fewest delegate calls in a sampling window before the ratio counts; at least 2. Default 20.</summary>
    public int MinimumThroughput { get; set; } = 20;

    /// <summary>The window failures are counted over; at least 500 ms. Default 10 s.</summary>
    public TimeSpan SamplingDuration { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>How long the circuit stays open before a probe; at least 500 ms. Default 5 s.</summary>
    public TimeSpan BreakDuration { get; set; } = TimeSpan.FromSeconds(5);
}
