using ERCache.Internal;
using Microsoft.Extensions.Time.Testing;

namespace ERCache.Tests;

/// <summary>The throttle behind the invalid-row and refused-value logs (their real-thread test is
/// <c>InvalidRowLogSoak</c>).</summary>
public sealed class LogThrottleTests
{
    [Fact]
    public void Each_kind_logs_once_per_interval_and_its_next_line_carries_the_count_left_out()
    {
        var clock = new FakeTimeProvider();
        var throttle = new LogThrottle(clock, kinds: 2);

        Assert.Equal((true, 0L), Enter(throttle, 0));
        Assert.Equal((false, 0L), Enter(throttle, 0));
        Assert.Equal((false, 0L), Enter(throttle, 0));
        Assert.Equal((true, 0L), Enter(throttle, 1)); // another kind is not held back by the first

        clock.Advance(LogThrottle.Interval - TimeSpan.FromTicks(1));
        Assert.Equal((false, 0L), Enter(throttle, 0)); // a tick short of the interval: the third left out

        clock.Advance(TimeSpan.FromTicks(1));
        Assert.Equal((true, 3L), Enter(throttle, 0));
        Assert.Equal((false, 0L), Enter(throttle, 0));
        Assert.Equal((true, 0L), Enter(throttle, 1)); // kind 1 left none out

        clock.Advance(LogThrottle.Interval);
        Assert.Equal((true, 1L), Enter(throttle, 0)); // the count started again at the last line
    }

    private static (bool Entered, long Suppressed) Enter(LogThrottle throttle, int kind) =>
        (throttle.TryEnter(kind, out long suppressed), suppressed);
}
