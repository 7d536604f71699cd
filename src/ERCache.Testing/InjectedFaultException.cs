namespace ERCache.Testing;

/// <summary>The exception an injected error throws.</summary>
public sealed class InjectedFaultException : Exception
{
    /// <summary>Creates the exception.</summary>
    public InjectedFaultException()
        : base("Injected inference fault.")
    {
    }

    /// <summary>Creates the exception with a message.</summary>
    public InjectedFaultException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with a message and an inner exception.</summary>
    public InjectedFaultException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
