using ERCache.Internal;
using Microsoft.Extensions.Time.Testing;

namespace ERCache.Tests;

/// <summary>The throttle behind the logs of problems that recur (their real-thread test is <c>InvalidRowLogSoak</c>),
/// and the clock of the health check's recent-window reasons.</summary>
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

    [Fact]
    public void Each_kind_remembers_when_it_last_happened_whether_its_line_was_logged_or_left_out()
    {
        var clock = new FakeTimeProvider();
        var throttle = new LogThrottle(clock, kinds: 2);
        Assert.Null(throttle.SinceLast(0));

        Assert.True(Enter(throttle, 0).Entered);
        clock.Advance(TimeSpan.FromSeconds(3));
        Assert.False(Enter(throttle, 0).Entered); // left out, and yet it happened now
        clock.Advance(TimeSpan.FromSeconds(2));

        Assert.Equal(TimeSpan.FromSeconds(2), throttle.SinceLast(0));
        Assert.Null(throttle.SinceLast(1)); // the other kind never happened
    }

    private static (bool Entered, long Suppressed) Enter(LogThrottle throttle, int kind) =>
        (throttle.TryEnter(kind, out long suppressed), suppressed);
}
