using System.Diagnostics;
using ERCache.Models;
using Microsoft.Extensions.Time.Testing;

namespace ERCache.Tests;

/// <summary>The clock of TTL checks: coarse for the system clock, exact for any other provider.</summary>
public sealed class TtlClockTests
{
    [Fact]
    public void With_a_fake_clock_it_reads_the_provider_exactly()
    {
        var fake = new FakeTimeProvider();
        var clock = new TtlClock(fake);
        Assert.False(clock.IsCoarse);
        Assert.Equal(fake.GetTimestamp(), clock.Now);
        fake.Advance(TimeSpan.FromTicks(3));
        Assert.Equal(fake.GetTimestamp(), clock.Now);
    }

}
